"""What the diffusion generator needs from a model: the `Backend` contract and its per-model defaults.

A backend owns the model's components (text encoders, denoiser, autoencoder) and exposes them in
the order every latent diffusion model runs: encode text -> (our) denoise loop -> decode. The generic
work (seeds, candidates, init audio, schedulers, CFG) lives in the generator, once for all models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from cadenza.data.sketch import SKETCH_ACCENT_DB
from cadenza.engine.denoise import ModelFn


@dataclass(frozen=True)
class ModelDefaults:
    """What a `Sampling` field left at its default means for this model.

    ``steps`` when ``Sampling.steps`` is None; ``cfg_scale`` when ``Sampling.cfg_scale`` is 1.0 (its
    default); ``scheduler`` when ``Sampling.scheduler`` is None; ``duration_s`` when
    ``Conditioning.duration_s`` is None (and no prompt audio gives a length); ``strength`` when an audio
    prompt is given and ``Sampling.strength`` is None; ``sketch_strength`` when a model that reads scores
    performs a melody from its sketch (`cadenza.data.sketch`) and ``Sampling.strength`` is None;
    ``sketch_accent_db``: how much that sketch accents each note's start (`accent_onsets`).
    """

    steps: int
    cfg_scale: float
    scheduler: str
    duration_s: float
    strength: float = 0.7
    sketch_strength: float = 0.5
    sketch_accent_db: float = SKETCH_ACCENT_DB

    def to_dict(self) -> dict:
        return {"steps": self.steps, "cfg_scale": self.cfg_scale, "scheduler": self.scheduler,
                "duration_s": self.duration_s, "strength": self.strength,
                "sketch_strength": self.sketch_strength, "sketch_accent_db": self.sketch_accent_db}


@dataclass(frozen=True)
class TextConditions:
    """Encoded text for a batch of prompts (one row per prompt): ``cond`` and, with CFG, ``uncond``
    (tensors or dicts of tensors, batch first; see ``engine.denoise.batch_conditions``)."""

    cond: Any
    uncond: Any | None


class Backend(Protocol):
    """One loaded text-to-audio latent diffusion model."""

    #: 'discrete' or 'sigma' (see ``schedulers``)
    scheduler_kind: str
    #: the model's own scheduler config (betas / sigmas, prediction type)
    scheduler_config: Mapping[str, Any]
    defaults: ModelDefaults
    sample_rate: int
    channels: int
    max_duration_s: float

    def encode_text(self, prompts: list[str], negatives: list[str | None], durations_s: list[float],
                    use_cfg: bool) -> TextConditions:
        """Conditions for ``len(prompts)`` rows (``durations_s`` feed timing conditioning where the model has it)."""

    def latent_shape(self, duration_s: float) -> tuple[int, ...]:
        """Shape of one sample's latent (no batch dim) for ``duration_s`` seconds of audio."""

    def model_fn(self, scheduler: Any) -> ModelFn:
        """``(latents [N, ...], t, cond) -> prediction [N, ...]`` for ``scheduler``'s timesteps."""

    def encode_audio(self, wav: torch.Tensor, duration_s: float) -> torch.Tensor:
        """``wav [B, C, T]`` at ``sample_rate`` -> scaled latents ``[B, *latent_shape(duration_s)]``
        (padded or cropped to the duration)."""

    def decode(self, latents: torch.Tensor, duration_s: float) -> torch.Tensor:
        """Latents ``[B, ...]`` -> ``wav [B, channels, round(duration_s * sample_rate)]`` float32."""


def repeat_rows(cond: Any, n: int) -> Any:
    """Repeat every row of ``cond`` (tensor / dict / tuple / list / None) ``n`` times, in place order:
    rows [a, b] -> [a, a, b, b]. This keeps sample k of prompt i at row ``i * n + k`` everywhere (text,
    init latents, noise), the pairing diffusers gets wrong for batched init audio (diffusers#13629)."""
    if cond is None or n == 1:
        return cond
    if isinstance(cond, torch.Tensor):
        return cond.repeat_interleave(n, dim=0)
    if isinstance(cond, Mapping):
        return {k: repeat_rows(v, n) for k, v in cond.items()}
    if isinstance(cond, (tuple, list)):
        return type(cond)(repeat_rows(v, n) for v in cond)
    raise TypeError(f"cannot repeat a conditioning of type {type(cond).__name__}")
