"""Stable Audio (Open) through its diffusers components: T5 + projection (+ start/end seconds) -> DiT
over an Oobleck VAE latent, stereo at the VAE's rate.

Differences from ``StableAudioPipeline.__call__`` (each a user complaint):
- only the latent frames the requested duration needs are denoised, ``ceil(duration * sr / hop)``
  (the DiT and the Oobleck decoder take any length), instead of the whole 47 s window for a 10 s request;
- init audio is encoded with the VAE's mean and noised to the strength's starting sigma (img2img), where
  the pipeline adds it to noise at sigma_max = 500, which drowns it (diffusers#10861);
- each prompt's init audio stays with its own prompt's samples in a batch (diffusers#13629).
Everything else (text, timing, CFG rows, rotary embedding) calls the pipeline's own methods, and for
a full-window request the result equals ``pipe(...)`` (tested).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cadenza.generators.diffusion.backend import ModelDefaults, TextConditions
from cadenza.generators.diffusion.schedulers import model_time

# Per-model defaults (Stable Audio Open's model card suggests cfg 7; DPM-Solver++ converges in ~30 steps).
DEFAULTS = ModelDefaults(steps=30, cfg_scale=7.0, scheduler="dpm++", duration_s=10.0, strength=0.7)


class StableAudioBackend:
    """Wraps a loaded ``diffusers.StableAudioPipeline`` (its components; never its ``__call__``)."""

    scheduler_kind = "sigma"

    def __init__(self, pipe: Any, defaults: ModelDefaults = DEFAULTS) -> None:
        self.pipe = pipe
        self.defaults = defaults
        self.scheduler_config = dict(pipe.scheduler.config)
        self.sample_rate = int(pipe.vae.config.sampling_rate)
        self.channels = int(pipe.vae.config.audio_channels)
        self.hop = int(pipe.vae.hop_length)
        self.window = int(pipe.transformer.config.sample_size)
        self.max_duration_s = min(self.window * self.hop / self.sample_rate, float(pipe.projection_model.config.max_value))
        self.device = pipe.transformer.device
        self.dtype = pipe.transformer.dtype

    # ---- conditions -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, prompts: list[str], negatives: list[str | None], durations_s: list[float],
                    use_cfg: bool) -> TextConditions:
        """Cross-attention states ``[B, S + 2, D]`` (text, start, end) and global states ``[B, 1, 2D]``.

        Without a negative prompt the unconditional text+timing states are zeros, with one they are the
        negative text's, exactly as the pipeline does (there the global timing states stay in both halves).
        """
        pipe = self.pipe
        text = pipe.encode_prompt(prompts, self.device, False)
        start, end = pipe.encode_duration([0.0] * len(prompts), [float(d) for d in durations_s], self.device, False,
                                          len(prompts))
        cross = torch.cat([text, start, end], dim=1)
        global_states = torch.cat([start, end], dim=2)
        cond = {"cross": cross, "global": global_states}
        if not use_cfg:
            return TextConditions(cond, None)
        uncond_cross = torch.zeros_like(cross)
        with_negative = [i for i, n in enumerate(negatives) if n is not None]
        if with_negative:
            neg_text = pipe.encode_prompt([negatives[i] for i in with_negative], self.device, False)
            index = torch.tensor(with_negative, device=cross.device)
            uncond_cross[index] = torch.cat([neg_text, start[index], end[index]], dim=1)
        return TextConditions(cond, {"cross": uncond_cross, "global": global_states})

    def frames(self, duration_s: float) -> int:
        """Latent frames for ``duration_s`` seconds: the fewest that hold it (at most the model's window)."""
        return min(self.window, max(1, math.ceil(duration_s * self.sample_rate / self.hop - 1e-9)))

    def latent_shape(self, duration_s: float) -> tuple[int, ...]:
        return (int(self.pipe.transformer.config.in_channels), self.frames(duration_s))

    def model_fn(self, scheduler: Any):
        from diffusers.models.embeddings import get_1d_rotary_pos_embed

        transformer, to_model_time = self.pipe.transformer, model_time(scheduler)
        rotary_cache: dict[int, Any] = {}

        def predict(x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
            length = x.shape[2] + cond["global"].shape[1]
            if length not in rotary_cache:
                rotary_cache[length] = get_1d_rotary_pos_embed(self.pipe.rotary_embed_dim, length, use_real=True,
                                                               repeat_interleave_real=False)
            return transformer(x, to_model_time(torch.as_tensor(t, device=x.device)).reshape(1),
                               encoder_hidden_states=cond["cross"], global_hidden_states=cond["global"],
                               rotary_embedding=rotary_cache[length], return_dict=False)[0]

        return predict

    # ---- audio <-> latents ----------------------------------------------------------------------
    @torch.no_grad()
    def encode_audio(self, wav: torch.Tensor, duration_s: float) -> torch.Tensor:
        frames = self.frames(duration_s)
        wav = _fit_channels(wav, self.channels)
        audio = wav.new_zeros(wav.shape[0], self.channels, frames * self.hop)
        n = min(audio.shape[-1], wav.shape[-1])
        audio[..., :n] = wav[..., :n]
        return self.pipe.vae.encode(audio.to(self.device, self.dtype)).latent_dist.mode()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, duration_s: float) -> torch.Tensor:
        audio = self.pipe.vae.decode(latents).sample
        return audio[:, :, : int(duration_s * self.sample_rate)].float()


def _fit_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """``wav [B, C, T]`` -> ``[B, channels, T]`` (mono duplicated, stereo averaged)."""
    if wav.shape[1] == channels:
        return wav
    if wav.shape[1] == 1:
        return wav.repeat(1, channels, 1)
    return wav.mean(1, keepdim=True).repeat(1, channels, 1)
