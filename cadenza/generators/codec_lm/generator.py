"""`CodecLMGenerator`: text / melody / audio prompt -> audio with a codec LM (MusicGen or our own).

One call: read the inputs, plan the LM windows, run each through ``engine.decode.decode_codebooks``
(delay pattern, batched CFG, static KV cache), decode all codes with the codec once, trim to the exact
duration.

**Duration** counts the whole output, prompt included (as MusicGen's ``generate_continuation``): a 4 s
prompt with ``duration_s=10`` gives 10 s, the first 4 s being the prompt as the codec re-decodes it.
Default: ``DEFAULT_DURATION_S``. Beyond one LM window (30 s for MusicGen) the piece grows by **sliding
extension**: each further window is conditioned on the last ``OVERLAP_FRACTION`` of a window (12 s of
MusicGen's 30) of codes as its prompt, and the melody (if any) is read from the matching time. The
provenance notes list every window.

**Sampling defaults.** ``Sampling()``'s own defaults mean "unset" here and take the model's defaults
(MusicGen: ``top_k`` 250, ``cfg_scale`` 3.0 or the checkpoint's ``inference_coef``; temperature 1):
``top_k`` 0 together with ``top_p`` 1 -> the model's top-k / top-p; ``cfg_scale`` 1 -> the model's
guidance scale. Any other value is used as given (set ``top_p`` < 1 for nucleus sampling without top-k,
``top_k`` = the codebook size for plain sampling, ``cfg_scale`` 0 for unconditional). The values used are
recorded in each output's provenance notes (``sampling_used``).

**Scores.** Our own models read a frame-aligned score (``cadenza.music.score_roll``): ``melody`` as a
MIDI file is performed note for note, at the file's tempo, by the instrument the text names; without
``duration_s`` the output lasts as long as the score plus ``SCORE_TAIL_S``. The unconditional CFG rows
get no score.

**Sketch.** Performing a score without an audio prompt, the model starts from the score's sketch
(`cadenza.data.sketch`: the score on the instrument the text names, rendered as the training clips
were): the first ``round((1 - strength) * K)`` of its ``K`` codebooks are taken from the sketch's codes
and the model writes the rest, reading the given ones as it reads a prompt (the coarse codebooks carry
pitch and rhythm; the fine ones the sound). ``Sampling.strength`` defaults to the model's
``sketch_strength`` (``SKETCH_STRENGTH`` when its config names none); 1 is the model's own performance
from the score alone. The sketch accents each note's start by the model's ``sketch_accent_db``
(``SKETCH_ACCENT_DB`` when its config names none; `cadenza.data.sketch.accent_onsets`).

**CFG rows.** The unconditional half drops text and melody as audiocraft does (null text: zero
states; null melody: audiocraft's silent chroma), and shares the audio prompt. With neither text nor
melody there is nothing to guide towards, so no unconditional rows are run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.engine.decode import DecodeParams, decode_codebooks, decode_step
from cadenza.engine.device import DevicePolicy
from cadenza.errors import InvalidConditioning
from cadenza.generators.base import (Callbacks, Progress, begin_call, cpu_threads, make_rng, provenance, threads_for,
                                     weight_count)
from cadenza.generators.codec_lm.conditioners import ConditionInputs
from cadenza.generators.codec_lm.loading import OVERLAP_FRACTION, CodecLMBundle, load_bundle
from cadenza.generators.codec_lm.lm import CodecLMRunner
from cadenza.music.score_roll import SCORE_TAIL_S
from cadenza.outputs import AudioOutput

DEFAULT_DURATION_S = 10.0
#: Default ``Sampling.strength`` for a score performed from its sketch: three of four codebooks given, the
#: model writes the finest. On 80 composed prompts (`python -m benchmarks audio_controls`, seeds 5, 23, 42,
#: 99) the beat tracker found the asked tempo in 0.70 of musicgen-folk-small's outputs at 0.3 against 0.64
#: at 0.5 (two given) and 0.71 of the FluidSynth sketches; melody F1 0.70 / 0.67, instrument 0.80 / 0.78,
#: key 0.93 / 0.94. The fine codebooks the model writes at 0.5 blur the note changes a beat tracker hears.
SKETCH_STRENGTH = 0.3


@dataclass(frozen=True)
class Window:
    """One LM window: ``context`` frames of codes already made (from ``start``) + ``new`` frames."""

    start: int
    context: int
    new: int


def plan_windows(prompt_frames: int, total_frames: int, window_frames: int, overlap_frames: int) -> list[Window]:
    """Windows that grow ``prompt_frames`` to exactly ``total_frames``.

    A window holds at most ``window_frames``; the first keeps the whole prompt as context when it
    fits (leaving room for at least one new frame), every later one the last ``overlap_frames``.
    """
    if not 0 < overlap_frames < window_frames:
        raise ValueError(f"overlap {overlap_frames} must lie between 0 and the window {window_frames}")
    if prompt_frames >= total_frames:
        raise InvalidConditioning(f"the prompt ({prompt_frames} frames) already fills the {total_frames} frames asked for")
    windows, made = [], prompt_frames
    while made < total_frames:
        context = made if made < window_frames else overlap_frames
        new = min(window_frames - context, total_frames - made)
        windows.append(Window(start=made - context, context=context, new=new))
        made += new
    return windows


def resolve_sampling(sampling: Sampling, defaults: dict) -> dict:
    """The temperature / top_k / top_p / cfg_scale to use (Sampling defaults -> model defaults)."""
    unset_filters = sampling.top_k == 0 and sampling.top_p == 1.0
    return {"temperature": sampling.temperature,
            "top_k": int(defaults["top_k"]) if unset_filters else sampling.top_k,
            "top_p": float(defaults["top_p"]) if unset_filters else sampling.top_p,
            "cfg_scale": float(defaults["cfg_scale"]) if sampling.cfg_scale == 1.0 else sampling.cfg_scale}


class CodecLMGenerator:
    """A loaded codec LM (MusicGen in audiocraft's layout, or our own). Holds no per-call state."""

    family = "codec_lm"

    def __init__(self, spec: CheckpointSpec, bundle: CodecLMBundle, policy: DevicePolicy | None = None) -> None:
        """``policy`` (default: where the LM already is) sets the LM's dtype (bf16 on CUDA) and whether
        its one-frame step is compiled (on CUDA by default: one CUDA graph per batch size)."""
        self.spec, self.bundle = spec, bundle
        self.policy = policy or DevicePolicy(prefer=str(next(bundle.lm.parameters()).device))
        device = self.policy.device()
        bundle.lm.to(device=device, dtype=self.policy.dtype_for(device))
        self._step = self.policy.maybe_compile(decode_step, device)
        self._threads = threads_for(weight_count(bundle.lm, bundle.codec))  # 1 for a small LM (see base)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.spec.capabilities

    @classmethod
    def from_checkpoint(cls, spec: CheckpointSpec, device: str | None = None) -> CodecLMGenerator:
        return cls(spec, load_bundle(spec, device or "cpu"), DevicePolicy(prefer=device or "cpu"))

    @property
    def default_duration_s(self) -> float:
        return DEFAULT_DURATION_S

    @property
    def max_duration_s(self) -> float | None:
        return None  # sliding windows extend a piece to any length

    @property
    def sample_rate(self) -> int:
        return int(self.bundle.codec.sample_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.bundle.codec.frame_rate)

    def generate(self, conditioning: Conditioning, sampling: Sampling,
                 callbacks: Callbacks = Callbacks()) -> list[AudioOutput]:
        """``sampling.num_samples`` clips of ``conditioning.duration_s`` seconds (prompt included)."""
        with cpu_threads(self._threads, next(self.bundle.lm.parameters()).device):
            return self._generate(conditioning, sampling, callbacks)

    def _generate(self, conditioning: Conditioning, sampling: Sampling, callbacks: Callbacks) -> list[AudioOutput]:
        seed = begin_call(self.spec, conditioning, sampling)
        started = time.perf_counter()
        bundle, lm, codec = self.bundle, self.bundle.lm, self.bundle.codec
        device = next(lm.parameters()).device
        used = resolve_sampling(sampling, bundle.defaults)
        rng = make_rng(seed, device)
        n = sampling.num_samples
        score_notes = self._score_notes(conditioning)
        duration = conditioning.duration_s if conditioning.duration_s is not None else (
            DEFAULT_DURATION_S if score_notes is None else float(score_notes[:, 1].max(initial=0.0)) + SCORE_TAIL_S)
        total_frames = math.ceil(duration * self.frame_rate - 1e-6)
        if total_frames < 1:
            raise InvalidConditioning(f"duration {duration} s is shorter than one codec frame ({1 / self.frame_rate:.3f} s)")

        prompt_codes = self._prompt_codes(conditioning, duration, device).expand(n, -1, -1)
        melody = self._melody(conditioning) if score_notes is None else None
        roll = None
        if score_notes is not None:
            from cadenza.music.score_roll import score_roll

            roll = torch.from_numpy(score_roll(score_notes, total_frames, self.frame_rate))
        fixed, sketch = self._sketch_codes(conditioning, sampling, score_notes, total_frames, device)
        window_frames = int(bundle.window_s * self.frame_rate)
        overlap = max(1, int(round(OVERLAP_FRACTION * window_frames)))
        windows = plan_windows(prompt_codes.shape[-1], total_frames, window_frames, overlap)
        conditioned = conditioning.text is not None or melody is not None or roll is not None
        use_cfg = conditioned and used["cfg_scale"] != 1.0
        progress = Progress(callbacks, sum(w.new + lm.config.pattern.max_delay for w in windows))

        codes = prompt_codes.to(device)
        notes_windows = []
        for window in windows:
            runner = self._runner(conditioning.text, melody, window, n, use_cfg, roll)
            params = DecodeParams(max_new_tokens=window.new, temperature=used["temperature"], top_k=used["top_k"],
                                  top_p=used["top_p"], cfg_scale=used["cfg_scale"] if use_cfg else 1.0,
                                  pad_id=lm.special_token_id, rng=rng, progress=progress.step,
                                  should_cancel=callbacks.should_cancel)
            context = codes[..., window.start :]
            first = window.start + window.context
            given = None if fixed is None else fixed[..., first : first + window.new]
            out = decode_codebooks(runner, context, params, uncond_prompt=context if use_cfg else None,
                                   start_id=lm.special_token_id, fixed=given,
                                   **self._step_options(runner, window_frames))
            codes = torch.cat([codes, out[..., window.context :]], dim=-1)
            notes_windows.append({"start_s": round(window.start / self.frame_rate, 3),
                                  "context_s": round(window.context / self.frame_rate, 3),
                                  "new_s": round(window.new / self.frame_rate, 3)})
        lm_done = time.perf_counter()
        with torch.inference_mode():
            wav = codec.decode(codes, None).float().clamp(-1.0, 1.0)
        wav = wav[..., : int(round(duration * self.sample_rate))].cpu().numpy()
        timings = {"lm": round(lm_done - started, 3), "codec_decode": round(time.perf_counter() - lm_done, 3)}
        notes = {"sampling_used": used, "windows": notes_windows, "frames": int(codes.shape[-1]),
                 "frame_rate": self.frame_rate, "cfg": use_cfg,
                 "prompt_s": round(prompt_codes.shape[-1] / self.frame_rate, 3)}
        if roll is not None:
            notes["score"] = {"notes": int(len(score_notes)), "frames": int(roll.shape[0]),
                              "seconds": round(float(score_notes[:, 1].max(initial=0.0)), 3)}
        if sketch is not None:
            notes["sketch"] = sketch
        if melody is not None:
            notes["melody_chroma"] = "whole mix (no stem separation)" if not _is_midi(conditioning.melody) else "piano rendering of the MIDI"
        return [AudioOutput(np.ascontiguousarray(wav[i], dtype=np.float32), self.sample_rate,
                            provenance(self.spec, conditioning, sampling, seed=seed, sample_index=i,
                                       timings_s=timings, notes=notes)) for i in range(n)]

    # ---- pieces ---------------------------------------------------------------------------------
    def _step_options(self, runner: CodecLMRunner, window_frames: int) -> dict:
        """How ``decode_codebooks`` steps: eager, or the compiled step over a static cache whose length
        fits the longest window, so every window (and every later call) replays the same graph."""
        if self._step is decode_step:
            return {}
        pattern = self.bundle.lm.config.pattern
        return {"step_fn": self._step, "static": True,
                "cache_len": min(runner.max_seq_len, 1 + pattern.sequence_length(window_frames))}

    def _prompt_codes(self, conditioning: Conditioning, duration: float, device: torch.device) -> torch.Tensor:
        """``[1, K, T0]`` codes of the prompt audio (``T0 = 0`` without one)."""
        k = self.bundle.lm.config.n_q
        if conditioning.prompt is None:
            return torch.zeros(1, k, 0, dtype=torch.long, device=device)
        from cadenza.generators.codec_lm.inputs import read_prompt

        wav = read_prompt(conditioning.prompt, self.sample_rate, int(self.bundle.codec.channels), self.frame_rate, duration)
        with torch.inference_mode():
            codes, _ = self.bundle.codec.encode(wav[None].to(device))
        return codes.long()

    def _sketch_codes(self, conditioning: Conditioning, sampling: Sampling, score_notes: np.ndarray | None,
                      total_frames: int, device: torch.device) -> tuple[torch.Tensor | None, dict | None]:
        """``(fixed [1, K, total_frames] or None, provenance note or None)``: the sketch's codes the model
        is given (-1 where it samples); see **Sketch**. Refuses a strength with nothing to start from."""
        sketched = score_notes is not None and conditioning.prompt is None
        if sampling.strength is not None and not sketched:
            raise InvalidConditioning(f"model {self.spec.name!r}: strength applies to a melody (MIDI) the model "
                                      "performs without an audio prompt")
        if not sketched:
            return None, None
        strength = sampling.strength if sampling.strength is not None else float(
            self.bundle.defaults.get("sketch_strength", SKETCH_STRENGTH))
        k = self.bundle.lm.config.n_q
        kept = int((1.0 - strength) * k + 0.5)
        if kept == 0:
            return None, None
        from cadenza.data.sketch import SKETCH_ACCENT_DB, sketch_melody

        accent = float(self.bundle.defaults.get("sketch_accent_db", SKETCH_ACCENT_DB))
        audio, instrument = sketch_melody(conditioning.melody, conditioning.text, self.sample_rate,
                                          total_frames / self.frame_rate, accent)
        with torch.inference_mode():
            codes, _ = self.bundle.codec.encode(torch.from_numpy(audio)[None, None].to(device))
        codes = codes.long()[..., :total_frames]
        fixed = torch.full((1, k, total_frames), -1, dtype=torch.long, device=device)
        fixed[:, :kept, : codes.shape[-1]] = codes[:, :kept]
        return fixed, {"instrument": instrument or "the melody file's own", "strength": strength,
                       "codebooks_given": kept, "accent_db": accent}

    def _score_notes(self, conditioning: Conditioning) -> np.ndarray | None:
        """``[N, 3]`` notes ``(onset_s, offset_s, pitch)`` of a MIDI melody for a model that reads scores
        (None when the model has no score input or no melody is given)."""
        if conditioning.melody is None or self.bundle.lm.config.score_dim is None:
            return None
        if not _is_midi(conditioning.melody):
            raise InvalidConditioning(f"model {self.spec.name!r} performs a score: give --melody as a MIDI file "
                                      "(an audio melody must be transcribed to MIDI first)")
        from cadenza.music.score_roll import melody_notes

        return melody_notes(conditioning.melody)

    def _melody(self, conditioning: Conditioning) -> torch.Tensor | None:
        if conditioning.melody is None:
            return None
        if self.bundle.melody_sample_rate is None:
            raise InvalidConditioning(f"model {self.spec.name!r} has no melody conditioner")
        from cadenza.generators.codec_lm.inputs import melody_waveform

        return melody_waveform(conditioning.melody, self.bundle.melody_sample_rate)

    def _runner(self, text: str | None, melody: torch.Tensor | None, window: Window, n: int,
                use_cfg: bool, roll: torch.Tensor | None = None) -> CodecLMRunner:
        """The LM with this window's conditioning for ``n`` rows (+ ``n`` unconditional rows under CFG).
        ``roll [F, SCORE_DIM]``: the whole output's score; the window reads its frames from ``window.start``."""
        bundle, lm = self.bundle, self.bundle.lm
        piece = None
        if melody is not None and bundle.melody_sample_rate is not None:
            sr = bundle.melody_sample_rate
            start = int(window.start / self.frame_rate * sr) % max(1, melody.shape[-1])
            piece = melody[start : start + int(bundle.window_s * sr)]
        texts = [text] * n + ([None] * n if use_cfg else [])
        melodies = [piece] * n + ([None] * n if use_cfg else [])
        with torch.inference_mode():
            states, mask, prefix = bundle.condition(ConditionInputs(texts, melodies))
            cross = lm.project_conditioning(states, mask) if lm.config.cross_attention else None
            score = None
            if roll is not None:
                steps = window.context + window.new + lm.config.pattern.max_delay + 1
                piece = roll[window.start : window.start + window.context + window.new][None]
                dtype = next(lm.parameters()).dtype
                score = lm.score_inputs(piece.to(device=cross.device if cross is not None else None, dtype=dtype), steps)
                score = score.expand(n, -1, -1)
                if use_cfg:
                    score = torch.cat([score, torch.zeros_like(score)])
        return CodecLMRunner(lm, cross=cross, prefix=prefix, score=score)


def _is_midi(path: str | None) -> bool:
    from cadenza.conditioning import MIDI_SUFFIXES

    return path is not None and path.lower().endswith(MIDI_SUFFIXES)
