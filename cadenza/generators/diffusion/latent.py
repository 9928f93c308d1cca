"""The latent space of our small diffusion model: the continuous latent of the shared audio codec.

`LatentAutoencoder` is the protocol the diffusion code needs; `CodecAutoencoder` implements it over the
codec of ``cadenza.codec.model`` (SEANet encoder output before quantization, decoded by
the SEANet decoder). `LatentStats` normalises latents to roughly unit scale for the diffusion model:
per-channel mean and one global std, measured on the training data and stored in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


class LatentAutoencoder(Protocol):
    """Audio <-> continuous latent. ``frame_rate`` latent frames per second."""

    sample_rate: int
    channels: int
    latent_dim: int
    frame_rate: float

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav [B, C, T]`` float32 in [-1, 1] -> ``z [B, D, F]``, F = ceil(T / hop)."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, D, F]`` -> ``wav [B, C, F * hop]``."""


class CodecAutoencoder:
    """The codec's SEANet encoder/decoder around its quantizer (which is skipped)."""

    def __init__(self, codec) -> None:
        self.codec = codec.eval()
        self.sample_rate = int(codec.sample_rate)
        self.channels = int(codec.channels)
        self.latent_dim = int(codec.encoder.dimension)
        self.frame_rate = float(codec.frame_rate)
        self.hop = self.sample_rate // int(codec.frame_rate)

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        pad = (-wav.shape[-1]) % self.hop
        if pad:
            wav = torch.nn.functional.pad(wav, (0, pad))
        return self.codec.encoder(wav)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.codec.decoder(z)


@dataclass(frozen=True)
class LatentStats:
    """``normalize(z) = (z - mean[:, None]) / std``; ``mean`` has one value per latent channel."""

    mean: tuple[float, ...]
    std: float

    @classmethod
    def measure(cls, latents: torch.Tensor) -> LatentStats:
        """From training latents ``[N, D, F]``."""
        mean = latents.float().mean(dim=(0, 2))
        std = (latents.float() - mean[None, :, None]).std()
        return cls(tuple(float(m) for m in mean), float(std))

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - torch.tensor(self.mean, dtype=z.dtype, device=z.device)[None, :, None]) / self.std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + torch.tensor(self.mean, dtype=z.dtype, device=z.device)[None, :, None]

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": self.std}
