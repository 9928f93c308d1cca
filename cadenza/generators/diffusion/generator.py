"""The diffusion generator: (Conditioning, Sampling) -> audio, for every diffusion model.

Models come in two formats (``spec.config["format"]``): ``"diffusers"`` (AudioLDM2, Stable Audio Open
folders; see ``pipeline_dir``) and ``"cadenza"`` (our small default; see ``cadenza_backend``). Both are a
`Backend`; this file maps the request onto it once:

- ``text`` / ``negative_text`` -> the model's text conditioning (no text = unconditional);
- ``duration_s`` -> latent length (and timing conditioning where the model has it); unset: the audio
  prompt's length, else the model's default duration;
- ``prompt`` (audio) -> init latents, noised to ``Sampling.strength`` (model default 0.7 when unset);
- ``melody`` (MIDI; models that read a score) -> the frame-aligned score (``cadenza.music.score_roll``) the
  model performs, note for note at the file's tempo; unset ``duration_s`` then lasts the score plus
  ``SCORE_TAIL_S`` (at most the model's longest). Without an audio prompt the model starts from the
  score's sketch (`cadenza.data.sketch`: the score on the instrument the text names, rendered as the
  training clips were), noised to ``Sampling.strength`` (default ``sketch_strength``); strength 1 is the
  model's own performance from the score alone;
- ``Sampling.steps`` / ``cfg_scale`` / ``scheduler``: None / 1.0 / None mean the model's default (e.g.
  AudioLDM2: dpm++ 25 steps cfg 3.5; Stable Audio Open: dpm++ 30 steps cfg 7; see each backend's
  ``DEFAULTS``). Because cfg 1.0 means "default", guidance cannot be switched off by asking for 1.0.
- ``num_samples`` candidates, sample k seeded ``seed + k``; with more than one they are returned
  best-first: by the model's own CLAP text-audio score where it has one (AudioLDM2, as its pipeline
  does), else by the offline ``rerank.quality`` score (each output's notes hold the scores and rank).
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.errors import CheckpointError, InvalidConditioning
from cadenza.generators.base import Callbacks, begin_call, cpu_threads, provenance, threads_for, weight_count
from cadenza.generators.diffusion.backend import Backend
from cadenza.generators.diffusion.rerank import rank
from cadenza.generators.diffusion.sampler import Batch, Settings, sample
from cadenza.generators.diffusion.schedulers import check_scheduler_name
from cadenza.music.score_roll import SCORE_TAIL_S
from cadenza.outputs import AudioOutput



def resolve_settings(conditioning: Conditioning, sampling: Sampling, backend: Backend,
                     prompt_seconds: float | None) -> Settings:
    """Fill every 'model default' of ``sampling`` from ``backend.defaults`` and validate against the model."""
    defaults = backend.defaults
    scheduler = check_scheduler_name(sampling.scheduler or defaults.scheduler, backend.scheduler_kind)
    sketched = conditioning.prompt is None and conditioning.melody is not None
    if sampling.strength is not None and conditioning.prompt is None and not sketched:
        raise InvalidConditioning("strength needs an audio prompt (--prompt FILE) or a melody (--melody FILE) "
                                  "to start from")
    if conditioning.duration_s is not None:
        duration = float(conditioning.duration_s)
    elif prompt_seconds is not None:
        duration = min(prompt_seconds, backend.max_duration_s)
    else:
        duration = min(defaults.duration_s, backend.max_duration_s)
    if duration > backend.max_duration_s + 1e-6:
        raise InvalidConditioning(f"duration {duration} s is longer than this model makes "
                                  f"({backend.max_duration_s:.2f} s at most)")
    strength = 1.0
    if conditioning.prompt is not None:
        strength = sampling.strength if sampling.strength is not None else defaults.strength
    elif sketched:
        strength = sampling.strength if sampling.strength is not None else defaults.sketch_strength
    steps = sampling.steps or defaults.steps
    if strength < 1.0 and int(steps * strength) < 1:
        raise InvalidConditioning(f"strength {strength} with {steps} steps runs no step; raise either")
    cfg = defaults.cfg_scale if sampling.cfg_scale == 1.0 else float(sampling.cfg_scale)
    return Settings(steps=steps, cfg_scale=cfg, scheduler=scheduler, duration_s=duration, strength=strength)


class DiffusionGenerator:
    """A loaded diffusion model (any format). Stateless between calls."""

    family = "diffusion"

    def __init__(self, spec: CheckpointSpec, backend: Backend) -> None:
        self.spec, self.backend = spec, backend
        self._threads = threads_for(weight_count(backend))  # 1 for a small model (see generators.base)
        self._device = _device_of(backend)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.spec.capabilities

    @property
    def default_duration_s(self) -> float:
        return float(min(self.backend.defaults.duration_s, self.backend.max_duration_s))

    @property
    def max_duration_s(self) -> float:
        return float(self.backend.max_duration_s)

    @classmethod
    def from_checkpoint(cls, spec: CheckpointSpec, device: str | None = None) -> DiffusionGenerator:
        fmt = spec.config.get("format")
        if fmt == "diffusers":
            from cadenza.generators.diffusion.pipeline_dir import load_backend

            return cls(spec, load_backend(spec, device))
        if fmt == "cadenza":
            from cadenza.generators.diffusion.cadenza_backend import load_cadenza_backend

            return cls(spec, load_cadenza_backend(spec, device))
        raise CheckpointError(f"{spec.name}: unknown diffusion format {fmt!r} (known: diffusers, cadenza)")

    def generate(self, conditioning: Conditioning, sampling: Sampling,
                 callbacks: Callbacks = Callbacks()) -> list[AudioOutput]:
        """``sampling.num_samples`` outputs ``[C, N]`` at the model's rate, best-first when more than one."""
        with cpu_threads(self._threads, self._device):
            return self._generate(conditioning, sampling, callbacks)

    def _generate(self, conditioning: Conditioning, sampling: Sampling, callbacks: Callbacks) -> list[AudioOutput]:
        seed = begin_call(self.spec, conditioning, sampling)
        started = time.perf_counter()
        init, prompt_seconds = self._read_prompt(conditioning.prompt)
        notes = self._score_notes(conditioning.melody)
        if notes is not None and conditioning.duration_s is None:
            end = float(notes[:, 1].max(initial=0.0))
            if end > self.backend.max_duration_s:
                raise InvalidConditioning(f"the melody lasts {end:.1f} s but {self.spec.name} makes at most "
                                          f"{self.backend.max_duration_s:g} s: set a duration to perform its start")
            conditioning = replace(conditioning, duration_s=min(end + SCORE_TAIL_S, self.backend.max_duration_s))
        settings = resolve_settings(conditioning, sampling, self.backend, prompt_seconds)
        sketch = None
        if notes is not None and init is None and settings.strength < 1.0:
            from cadenza.data.sketch import sketch_melody

            accent = self.backend.defaults.sketch_accent_db
            audio, instrument = sketch_melody(conditioning.melody, conditioning.text, self.backend.sample_rate,
                                              settings.duration_s, accent)
            init = torch.from_numpy(audio)[None]
            sketch = {"instrument": instrument or "the melody file's own", "strength": settings.strength,
                      "accent_db": accent}
        seeds = [seed + k for k in range(sampling.num_samples)]
        scores = []
        if notes is not None:
            from cadenza.music.score_roll import score_roll

            frames = self.backend.latent_shape(settings.duration_s)[-1]
            scores = [torch.from_numpy(score_roll(notes, frames, self.backend.autoencoder.frame_rate))]
        batch = Batch([conditioning.text or ""], [conditioning.negative_text], [seeds], [init] if init is not None else [],
                      scores)
        wav = sample(self.backend, batch, settings, callbacks.progress, callbacks.should_cancel)
        candidates = [w.numpy() for w in wav]
        order, scores = rank(candidates) if len(candidates) > 1 else ([0], [None])
        agreement = None
        if len(candidates) > 1 and conditioning.text and hasattr(self.backend, "text_audio_scores"):
            agreement = self.backend.text_audio_scores(conditioning.text, wav)  # the model's own CLAP: rank by it
            order = sorted(range(len(candidates)), key=lambda i: -agreement[i])
        elapsed = round(time.perf_counter() - started, 3)
        outputs = []
        for position, k in enumerate(order):
            notes = {**settings.to_dict(), "steps_run": _steps_run(settings), "model_defaults": self.backend.defaults.to_dict(),
                     "init_audio": conditioning.prompt is not None}
            if sketch is not None:
                notes["sketch"] = sketch
            if scores[k] is not None:
                notes |= {"rank": position, "ranked_by": "clap" if agreement else "quality",
                          "quality": scores[k].to_dict()}
            if agreement:
                notes["clap_score"] = round(agreement[k], 5)
            # each candidate has its own seed (made alone from it, it comes out within float noise of this
            # one); the sidecar records the whole call, which remakes it bit for bit
            made = provenance(self.spec, conditioning, sampling, seed=seeds[k], sample_index=k, call_seed=seed,
                              timings_s={"generate": elapsed}, notes=notes)
            outputs.append(AudioOutput(candidates[k], self.backend.sample_rate, made))
        return outputs

    def _score_notes(self, path: str | None):
        """``[N, 3]`` notes of a MIDI melody (None without one); refused by models that read no score."""
        if path is None:
            return None
        if not getattr(getattr(self.backend, "model", None), "config", None) or not self.backend.model.config.score_dim:
            raise InvalidConditioning(f"model {self.spec.name!r} reads no score (melody)")
        from cadenza.conditioning import MIDI_SUFFIXES
        from cadenza.music.score_roll import melody_notes

        if not path.lower().endswith(MIDI_SUFFIXES):
            raise InvalidConditioning(f"model {self.spec.name!r} performs a score: give --melody as a MIDI file "
                                      "(an audio melody must be transcribed to MIDI first)")
        return melody_notes(path)

    def _read_prompt(self, path: str | None) -> tuple[torch.Tensor | None, float | None]:
        """Init audio ``[C, T]`` at the model's rate (soxr-resampled by ``read_audio``) and its length in s."""
        if path is None:
            return None, None
        from cadenza.fileio.audio import read_audio

        samples, rate = read_audio(path, sample_rate=self.backend.sample_rate)
        return torch.from_numpy(samples), samples.shape[-1] / rate


def _device_of(backend: Backend) -> torch.device | None:
    """Where the backend's first weights are (a pipeline's components, or the modules it holds)."""
    held = list(vars(backend).values()) + list((getattr(getattr(backend, "pipe", None), "components", None) or {}).values())
    for value in held:
        if isinstance(value, torch.nn.Module):
            for parameter in value.parameters():
                return parameter.device
    return None


def _steps_run(settings: Settings) -> int:
    return settings.steps if settings.strength >= 1.0 else min(int(settings.steps * settings.strength), settings.steps)
