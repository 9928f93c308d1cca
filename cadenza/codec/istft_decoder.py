"""A frame-rate decoder with an inverse-STFT head (the Vocos design) for the shared codec.

SEANet's decoder upsamples the 50 Hz latent to 16 kHz through transposed convolutions, so most of its
work runs at the sample rate. This decoder stays at the frame rate: ConvNeXt blocks over the latent
frames, then a linear head that predicts, per frame, the log-magnitude and the phase of one STFT column
(``n_fft = 4 * hop``), and ``torch.istft`` makes the waveform. It predicts the spectrum directly, which
is what the instrument's sound lives in, and it is cheap to train on a CPU.

``forward(latent [B, D, F]) -> wav [B, 1, F * hop]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ISTFTDecoderConfig:
    """``dimension``: latent width; ``hop``: samples per latent frame; ``dim`` / ``layers``: the ConvNeXt
    stack; ``n_fft``: STFT size of the head (default 4 hops)."""

    dimension: int = 64
    hop: int = 320
    dim: int = 256
    layers: int = 8
    n_fft: int | None = None

    @property
    def fft_size(self) -> int:
        return self.n_fft or 4 * self.hop


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (7) -> LayerNorm -> pointwise MLP (x3) -> layer scale, residual. ``[B, C, F]``."""

    def __init__(self, dim: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 3 * dim)
        self.pwconv2 = nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(torch.nn.functional.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class ISTFTDecoder(nn.Module):
    """Latent frames -> waveform through ConvNeXt blocks and an inverse STFT (see the module docstring)."""

    def __init__(self, config: ISTFTDecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Conv1d(config.dimension, config.dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(config.dim, 1.0 / config.layers) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.head = nn.Linear(config.dim, config.fft_size + 2)
        self.register_buffer("window", torch.hann_window(config.fft_size), persistent=False)

    def spectrum(self, latent: torch.Tensor) -> torch.Tensor:
        """``latent [B, D, F]`` -> complex STFT ``[B, n_fft // 2 + 1, F]``."""
        x = self.embed(latent)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).float()
        log_mag, phase = x.chunk(2, dim=1)
        magnitude = torch.exp(log_mag).clamp(max=1e2)
        return torch.polar(magnitude, phase)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        spec = self.spectrum(latent)
        frames = latent.shape[-1]
        wav = torch.istft(spec, self.config.fft_size, hop_length=self.config.hop, win_length=self.config.fft_size,
                          window=self.window, center=True, length=frames * self.config.hop)
        return wav[:, None].to(latent.dtype)
