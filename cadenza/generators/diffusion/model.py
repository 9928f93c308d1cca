"""Our small text-to-music latent diffusion model: diffusers' Stable Audio architecture (`diffusion.dit`).

Why ``StableAudioDiTModel`` (over ``UNet1DModel`` / ``UNet2DConditionModel``): the codec latent is a
1-D sequence ``[B, 64, frames]``, which a 1-D transformer handles at any length (the 2-D UNet would
treat it as an image and needs sizes divisible by its downsampling); it has cross-attention to text
states with a key mask and a global-conditioning token, which is exactly where timing goes; and
``StableAudioProjectionModel`` already embeds seconds like Stable Audio does. ``UNet1DModel`` has no
cross-attention at all.

Conditioning: MiniLM token states (+ its pooled vector as a first token) -> projection -> cross-attention;
``seconds_start`` (always 0 here) and ``seconds_total`` -> number embeddings, appended to the cross-attention
tokens and concatenated as the global token (as Stable Audio). The unconditional input (classifier-free
guidance, and the 10 % condition dropout in training) is the same layout with zero text states: timing
always conditions.

Tokens: ``patch`` consecutive latent frames are folded into one token (channels ``D * patch``), halving the
sequence the attention runs over at the codec's 50 frames/s (Stable Audio's latent is ~21.5 frames/s).

Score: with ``score_dim`` set, a frame-aligned score ``[B, F, score_dim]`` (``cond["score"]``, aligned with
the latent frames) is projected to ``score_channels`` per frame and concatenated to the latent's channels
before the tokens are folded (in-context conditioning, as JASCO does with its melody); rows without a
score (all zero, the text-only path and the unconditional half of CFG) project to zeros.

Diffusion: DDPM cosine schedule ("squaredcos_cap_v2", 1000 steps), v-prediction; the DiT's time input
is ``t / 1000``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True)
class DiTConfig:
    """Model size. ``max_seconds``: the range of the timing embedding and the longest duration offered
    (training sets it to the clip length: durations beyond what the model saw are refused, not extrapolated)."""

    latent_dim: int = 64
    text_dim: int = 384
    cond_dim: int = 128
    layers: int = 8
    heads: int = 4
    head_dim: int = 32
    time_proj_dim: int = 64
    max_seconds: float = 30.0
    patch: int = 2  # latent frames folded into one token (50 Hz codec frames -> 25 tokens/s)
    score_dim: int | None = None  # a frame-aligned score (cadenza.music.score_roll) read beside the latent
    score_channels: int = 32  # its projection's width, concatenated to the latent's channels

    def to_dict(self) -> dict:
        return asdict(self)


def scheduler_config() -> dict:
    """The training noise schedule (also the template every inference scheduler is built from): the config
    diffusers' ``DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
    prediction_type="v_prediction", clip_sample=False, timestep_spacing="trailing")`` writes (a test checks),
    spelled out so loading the model imports no diffusers."""
    return {"num_train_timesteps": NUM_TRAIN_TIMESTEPS, "beta_start": 0.0001, "beta_end": 0.02,
            "beta_schedule": "squaredcos_cap_v2", "trained_betas": None, "variance_type": "fixed_small",
            "clip_sample": False, "prediction_type": "v_prediction", "thresholding": False,
            "dynamic_thresholding_ratio": 0.995, "clip_sample_range": 1.0, "sample_max_value": 1.0,
            "timestep_spacing": "trailing", "steps_offset": 0, "rescale_betas_zero_snr": False}


class LatentDiT(nn.Module):
    """``forward(latents [B, D, F], time [B] in [0, 1], cond) -> v [B, D, F]``; ``cond`` from ``conditions``."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        from cadenza.generators.diffusion.dit import ConditionProjection, StableAudioDiT

        self.config = config
        self.projection = ConditionProjection(config.text_dim, config.cond_dim, 0, config.max_seconds)
        self.dit = StableAudioDiT(
            in_channels=(config.latent_dim + (config.score_channels if config.score_dim else 0)) * config.patch,
            out_channels=config.latent_dim * config.patch, layers=config.layers, heads=config.heads,
            head_dim=config.head_dim, kv_heads=config.heads, context_dim=config.cond_dim,
            context_in_dim=config.cond_dim, global_dim=2 * config.cond_dim, time_proj_dim=config.time_proj_dim)
        self.score_proj = nn.Linear(config.score_dim, config.score_channels) if config.score_dim else None
        self._rotary: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def conditions(self, states: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor,
                   seconds_total: torch.Tensor) -> dict[str, torch.Tensor]:
        """``states [B, S, 384]``, ``mask [B, S]`` bool, ``pooled [B, 384]``, ``seconds_total [B]`` ->
        ``{"cross": [B, S + 3, C], "mask": [B, S + 3], "global": [B, 1, 2C]}``."""
        text = self.projection.text(torch.cat([pooled[:, None], states], dim=1))
        start, end = self.projection.seconds(torch.zeros_like(seconds_total), seconds_total)
        cross = torch.cat([text, start, end], dim=1)
        ones = torch.ones(mask.shape[0], 1, dtype=torch.bool, device=mask.device)
        full_mask = torch.cat([ones, mask.bool(), ones, ones], dim=1)
        return {"cross": cross, "mask": full_mask, "global": torch.cat([start, end], dim=2)}

    def score_channels(self, score: torch.Tensor | None, batch: int, frames: int, like: torch.Tensor) -> torch.Tensor:
        """``score [B, F', score_dim]`` (or None: no score) -> ``[B, score_channels, frames]`` (cropped or
        zero-padded to ``frames``; rows without a score are zero)."""
        if score is None:
            return like.new_zeros(batch, self.config.score_channels, frames)
        score = score[:, :frames].to(like.dtype)
        present = (score.abs().sum(-1, keepdim=True) > 0).to(like.dtype)
        projected = (self.score_proj(score) * present).transpose(1, 2)
        return torch.nn.functional.pad(projected, (0, frames - projected.shape[-1]))

    def rotary(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if length not in self._rotary:
            from cadenza.generators.diffusion.dit import rotary_tables

            self._rotary[length] = rotary_tables(self.config.head_dim // 2, length)
        return tuple(r.to(device) for r in self._rotary[length])

    def forward(self, latents: torch.Tensor, time: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        time = time.reshape(-1).to(latents.dtype)
        if time.shape[0] == 1 and latents.shape[0] > 1:
            time = time.expand(latents.shape[0])
        b, d, frames = latents.shape
        p = self.config.patch
        pad = (-frames) % p
        x = latents
        if self.score_proj is not None:
            x = torch.cat([x, self.score_channels(cond.get("score"), b, frames, latents)], dim=1)
        x = torch.nn.functional.pad(x, (0, pad))  # the padded frames are cut off again below
        x = x.reshape(b, x.shape[1], -1, p).permute(0, 1, 3, 2).reshape(b, x.shape[1] * p, -1)  # [B, D'*p, F/p]
        out = self.dit(x, time, cond["cross"], cond["global"], self.rotary(x.shape[2] + 1, latents.device),
                       context_mask=cond["mask"].bool())
        out = out.reshape(b, d, p, -1).permute(0, 1, 3, 2).reshape(b, d, -1)  # out_channels stay D * p
        return out[:, :, :frames]


def widen_for_score(model: LatentDiT, text_only_state: dict[str, torch.Tensor]) -> None:
    """Load a text-only model's weights into ``model`` (which reads a score): the input layers gain zero
    columns for the score channels, so ``model`` begins as exactly the text-only model. (A score model's
    weights load unchanged, its score projection included: training goes on from it.) The score
    projection keeps its own (random) initialisation: were it zero too, neither it nor the zero columns
    would ever receive a gradient (each one's gradient is the other's output). Raises ValueError when
    anything else differs."""
    own = model.state_dict()
    unexpected = set(text_only_state) - set(own)
    missing = {k for k in own if k not in text_only_state and not k.startswith("score_proj.")}
    if unexpected or missing:
        raise ValueError(f"weights do not fit (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    widened = {}
    for name, value in own.items():
        if name.startswith("score_proj."):  # a score model's own projection carries on; else a fresh one
            given = text_only_state.get(name)
            widened[name] = given.to(value.dtype) if given is not None and given.shape == value.shape else value
            continue
        old = text_only_state[name].to(value.dtype)
        if old.shape == value.shape:
            widened[name] = old
            continue
        if old.dim() != value.dim() or any(o > n for o, n in zip(old.shape, value.shape)):
            raise ValueError(f"{name}: {tuple(old.shape)} cannot widen to {tuple(value.shape)}")
        grown = torch.zeros_like(value)
        grown[tuple(slice(0, o) for o in old.shape)] = old
        widened[name] = grown
    model.load_state_dict(widened)
