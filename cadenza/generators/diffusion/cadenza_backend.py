"""Our small default (``format: "cadenza"``) as a `Backend`: MiniLM text + timing -> `LatentDiT` over the
normalised codec latent -> codec decoder. Mono at the codec's rate (16 kHz for the shipped codec).

Checkpoint folder: ``model.safetensors`` (the DiT + projection), ``codec.safetensors`` (the codec it was
trained on, copied in so the folder is self-contained), ``manifest.json`` whose config holds ``model``
(`DiTConfig`), ``codec`` (the codec config), ``latent`` (`LatentStats`) and ``defaults``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.errors import CheckpointError
from cadenza.generators.diffusion.backend import ModelDefaults, TextConditions
from cadenza.generators.diffusion.latent import LatentAutoencoder, LatentStats
from cadenza.generators.diffusion.model import NUM_TRAIN_TIMESTEPS, DiTConfig, LatentDiT, scheduler_config

# sketch_strength: after the DiT's low-noise fine-tune (`--focus-t`), on the 20 audio_controls prompts and 24
# other ones (seed 123), instrument 0.55 / 0.75 at strength 0.4 against 0.50 / 0.71 at 0.5, melody F1 0.61 /
# 0.66 against 0.60 / 0.65, key and tempo alike: 0.4 leaves the model the last 40 % of the denoising.
# sketch_accent_db: the DiT redraws the last 40 % of its schedule and so blurs more of the sketch's note starts
# than the codec LM (which keeps three of four codebooks): on 120 audio_controls prompts (seeds 11, 99, 4242)
# the beat tracker found the asked tempo in 0.60 / 0.65 / 0.69 of its outputs at 6 / 8 / 10 dB (the plain
# sketch's: 0.68), the probe the instrument in 0.70 / 0.68 / 0.64 (RESULTS.md, "articulated sketch").
DEFAULTS = ModelDefaults(steps=25, cfg_scale=4.0, scheduler="dpm++", duration_s=8.0, strength=0.7, sketch_strength=0.4,
                         sketch_accent_db=8.0)


class CadenzaBackend:
    """``model`` + ``autoencoder`` + ``text_encoder`` (anything returning a ``TextEmbedding`` for a list of str)."""

    scheduler_kind = "discrete"

    def __init__(self, model: LatentDiT, autoencoder: LatentAutoencoder, stats: LatentStats, text_encoder: Any,
                 defaults: ModelDefaults = DEFAULTS) -> None:
        self.model, self.autoencoder, self.stats, self.text_encoder = model.eval(), autoencoder, stats, text_encoder
        self.defaults = defaults
        self.scheduler_config = scheduler_config()
        self.sample_rate = autoencoder.sample_rate
        self.channels = autoencoder.channels
        self.max_duration_s = float(model.config.max_seconds)

    @torch.no_grad()
    def encode_text(self, prompts: list[str], negatives: list[str | None], durations_s: list[float],
                    use_cfg: bool) -> TextConditions:
        """Prompts and negatives are encoded in one call so both pad to the same token count; no negative
        means zero text states (the null condition the model was trained with)."""
        b = len(prompts)
        texts = list(prompts) + ([n or "" for n in negatives] if use_cfg else [])
        emb = self.text_encoder(texts)
        device = next(self.model.parameters()).device
        states, mask, pooled = emb.states.to(device), emb.mask.to(device), emb.pooled.to(device)
        seconds = torch.tensor([float(d) for d in durations_s], device=device)
        has_text = torch.tensor([bool(p) for p in prompts], device=device)[:, None, None]
        cond = self.model.conditions(states[:b] * has_text, mask[:b], pooled[:b] * has_text[:, :, 0], seconds)
        if not use_cfg:
            return TextConditions(cond, None)
        has_negative = torch.tensor([n is not None for n in negatives], device=device)[:, None, None]
        uncond_mask = torch.where(has_negative[:, :, 0], mask[b:], mask[:b])
        uncond = self.model.conditions(states[b:] * has_negative, uncond_mask, pooled[b:] * has_negative[:, :, 0], seconds)
        return TextConditions(cond, uncond)

    def with_scores(self, texts: TextConditions, scores: torch.Tensor) -> TextConditions:
        """Add ``scores [P, F, score_dim]`` (one per prompt row) to the conditions; the unconditional rows
        of CFG get none."""
        if not self.model.config.score_dim:
            raise ValueError("this model reads no score")
        device = next(self.model.parameters()).device
        scores = scores.to(device)
        uncond = None if texts.uncond is None else {**texts.uncond, "score": torch.zeros_like(scores)}
        return TextConditions({**texts.cond, "score": scores}, uncond)

    def frames(self, duration_s: float) -> int:
        return max(1, math.ceil(duration_s * self.autoencoder.frame_rate - 1e-9))

    def latent_shape(self, duration_s: float) -> tuple[int, ...]:
        return (self.autoencoder.latent_dim, self.frames(duration_s))

    def model_fn(self, scheduler: Any):
        model = self.model

        def predict(x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
            return model(x, torch.as_tensor(t, device=x.device).float() / NUM_TRAIN_TIMESTEPS, cond)

        return predict

    @torch.no_grad()
    def encode_audio(self, wav: torch.Tensor, duration_s: float) -> torch.Tensor:
        hop = round(self.sample_rate / self.autoencoder.frame_rate)
        length = self.frames(duration_s) * hop
        wav = wav.mean(1, keepdim=True) if self.channels == 1 else wav
        fitted = wav.new_zeros(wav.shape[0], self.channels, length)
        n = min(length, wav.shape[-1])
        fitted[..., :n] = wav[..., :n]
        return self.stats.normalize(self.autoencoder.encode(fitted))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, duration_s: float) -> torch.Tensor:
        wav = self.autoencoder.decode(self.stats.denormalize(latents))
        return wav[:, :, : int(duration_s * self.sample_rate)].float().clamp(-1, 1)


def load_cadenza_backend(spec: CheckpointSpec, device: str | None = None) -> CadenzaBackend:
    """Verify and load a ``format: cadenza`` checkpoint (weights and codec through safetensors)."""
    from cadenza.codec.model import load_codec
    from cadenza.generators.diffusion.latent import CodecAutoencoder
    from cadenza.tokenizers.text import TextEncoder

    tensors = spec.load_safetensors("weights")  # verifies every file's sha256 first
    config = spec.config
    try:
        model = LatentDiT(DiTConfig(**config["model"]))  # (the meta device would import torch._refs: ~0.7 s)
        stats = LatentStats(tuple(config["latent"]["mean"]), float(config["latent"]["std"]))
        defaults = ModelDefaults(**config.get("defaults", DEFAULTS.to_dict()))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{spec.name}: malformed diffusion config ({exc!r})") from exc
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{spec.name}: weights do not fit the config (missing {missing[:4]}, unexpected {unexpected[:4]})")
    device = device or "cpu"
    codec = load_codec(spec.path("codec"), config["codec"], device=device)
    return CadenzaBackend(model.to(device), CodecAutoencoder(codec), stats, TextEncoder().to(device), defaults)
