"""One run of any `Backend`: prompts x candidates -> waveforms, through ``engine.denoise``.

Rows are laid out prompt-major: sample k of prompt i is row ``i * n + k`` in the text conditions, the
init latents and the noise alike (see ``backend.repeat_rows``). Every row's noise comes from its own
seed, so a candidate can be re-made alone from the seed in its provenance (for deterministic
schedulers; a stochastic one draws its step noise from the first row's generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cadenza.engine.denoise import denoise
from cadenza.errors import InvalidConditioning
from cadenza.generators.diffusion.backend import Backend, repeat_rows
from cadenza.generators.diffusion.schedulers import make_scheduler


@dataclass(frozen=True)
class Settings:
    """Fully resolved sampling settings for one run (no 'model default' placeholders left)."""

    steps: int
    cfg_scale: float
    scheduler: str
    duration_s: float
    strength: float = 1.0  # < 1 only with init audio

    def to_dict(self) -> dict:
        return {"steps": self.steps, "cfg_scale": self.cfg_scale, "scheduler": self.scheduler,
                "duration_s": self.duration_s, "strength": self.strength}


@dataclass
class Batch:
    """Prompts and their candidates. ``seeds[i]`` holds one seed per candidate of prompt i (all the same
    count); ``init_audio[i]`` is prompt i's init audio ``[C, T]`` at the backend's rate, or None."""

    prompts: list[str]
    negatives: list[str | None]
    seeds: list[list[int]]
    init_audio: list[torch.Tensor | None] = field(default_factory=list)
    scores: list[torch.Tensor] = field(default_factory=list)  # per prompt ``[F, score_dim]`` (models that read one)

    def __post_init__(self) -> None:
        if not (len(self.prompts) == len(self.negatives) == len(self.seeds)):
            raise ValueError("prompts, negatives and seeds need one entry per prompt")
        if len({len(s) for s in self.seeds}) != 1:
            raise ValueError("every prompt needs the same number of candidates")
        if self.init_audio and len(self.init_audio) != len(self.prompts):
            raise ValueError("init_audio needs one entry (or None) per prompt")
        if self.scores and len(self.scores) != len(self.prompts):
            raise ValueError("scores need one entry per prompt")

    @property
    def candidates(self) -> int:
        return len(self.seeds[0])


def sample(backend: Backend, batch: Batch, settings: Settings, progress=None, should_cancel=None) -> torch.Tensor:
    """Generate ``wav [P * n, C, N]`` float32 (prompt-major) for ``batch`` with ``settings``."""
    if settings.duration_s > backend.max_duration_s + 1e-6:
        raise InvalidConditioning(f"duration {settings.duration_s} s is longer than this model makes "
                                  f"({backend.max_duration_s:.2f} s at most)")
    n = batch.candidates
    use_cfg = settings.cfg_scale != 1.0
    scheduler = make_scheduler(settings.scheduler, backend.scheduler_kind, backend.scheduler_config)
    texts = backend.encode_text(batch.prompts, batch.negatives, [settings.duration_s] * len(batch.prompts), use_cfg)
    if batch.scores:
        texts = backend.with_scores(texts, torch.stack(batch.scores))
    shape = backend.latent_shape(settings.duration_s)
    device = _device_of(texts.cond)
    generators = [torch.Generator(device="cpu").manual_seed(int(s)) for row in batch.seeds for s in row]
    noise = torch.cat([torch.randn((1, *shape), generator=g) for g in generators]).to(device)

    has_init = any(a is not None for a in batch.init_audio)
    if has_init:
        latents, noise_for_init = _init_latents(backend, batch, settings, noise), noise
    else:
        latents, noise_for_init = noise, None
    denoised = denoise(backend.model_fn(scheduler), latents, scheduler, settings.steps,
                       repeat_rows(texts.cond, n), uncond=repeat_rows(texts.uncond, n), cfg_scale=settings.cfg_scale,
                       rng=generators[0], progress=progress, should_cancel=should_cancel,
                       strength=settings.strength if has_init else 1.0, noise=noise_for_init)
    with torch.inference_mode():
        return backend.decode(denoised, settings.duration_s).cpu()


def _init_latents(backend: Backend, batch: Batch, settings: Settings, noise: torch.Tensor) -> torch.Tensor:
    """Init latents ``[P * n, ...]``: each prompt's audio encoded once and repeated for its candidates.

    A prompt without init audio in a batch where others have one starts from pure noise, which needs
    strength 1 for the whole batch: refused instead of silently treated differently.
    """
    if any(a is None for a in batch.init_audio):
        raise InvalidConditioning("in one batch, either every prompt has init audio or none has")
    with torch.inference_mode():
        encoded = []
        for audio in batch.init_audio:
            wav = audio.unsqueeze(0).float()
            encoded.append(backend.encode_audio(wav, settings.duration_s))
        latents = torch.cat(encoded)
    return repeat_rows(latents.to(noise), batch.candidates).clone()


def _device_of(cond) -> torch.device:
    if isinstance(cond, torch.Tensor):
        return cond.device
    if isinstance(cond, dict):
        return _device_of(next(iter(cond.values())))
    return torch.device("cpu")
