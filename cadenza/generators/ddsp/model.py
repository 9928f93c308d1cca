"""The DDSP autoencoder's decoder (MLP + GRU, no latent z: one model per instrument) and its config.

(f0, loudness) per frame -> harmonic amplitudes and noise filter magnitudes -> `synth.synthesize`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from cadenza.generators.ddsp import core
from cadenza.generators.ddsp.synth import Controls


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes and rates. ``hop`` samples per frame (160 at 16 kHz = 100 frames/s); ``reverb_s`` length
    of the learned reverb impulse response (0 = dry)."""

    sample_rate: int = 16000
    hop: int = 160
    n_harmonics: int = 64
    n_noise: int = 65
    hidden: int = 192
    gru: int = 192
    mlp_layers: int = 2
    reverb_s: float = 0.0
    layer_norm_eps: float = 1e-5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InstrumentStats:
    """What the training data looked like, for mapping another source onto this instrument:
    loudness (dB) of sounding frames, and the MIDI pitch range played."""

    loudness_mean: float = -40.0
    loudness_p10: float = -55.0
    loudness_p95: float = -25.0
    pitch_mean: float = 69.0
    pitch_low: float = 55.0
    pitch_high: float = 88.0

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(n_in: int, width: int, layers: int, eps: float) -> nn.Sequential:
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(n_in if i == 0 else width, width), nn.LayerNorm(width, eps=eps), nn.LeakyReLU(0.2)]
    return nn.Sequential(*blocks)


class DDSPDecoder(nn.Module):
    """``forward(f0_hz [B, F], loudness_db [B, F], hidden) -> (Controls, hidden [1, B, gru])``."""

    def __init__(self, config: DecoderConfig = DecoderConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.f0_mlp = _mlp(1, c.hidden, c.mlp_layers, c.layer_norm_eps)
        self.loudness_mlp = _mlp(1, c.hidden, c.mlp_layers, c.layer_norm_eps)
        self.gru = nn.GRU(2 * c.hidden, c.gru, batch_first=True)
        self.out_mlp = _mlp(c.gru + 2 * c.hidden, c.hidden, c.mlp_layers, c.layer_norm_eps)
        self.out = nn.Linear(c.hidden, 1 + c.n_harmonics + c.n_noise)
        taps = int(round(c.reverb_s * c.sample_rate))
        if taps > 0:  # DDSP's trainable reverb: a free impulse response, started as quiet decaying noise
            decay = torch.exp(-torch.arange(taps) / (0.1 * c.sample_rate))
            self.reverb_ir = nn.Parameter(torch.randn(taps, generator=torch.Generator().manual_seed(0)) * decay * 0.01)
        else:
            self.register_parameter("reverb_ir", None)

    def forward(self, f0_hz: torch.Tensor, loudness_db: torch.Tensor,
                hidden: torch.Tensor | None = None) -> tuple[Controls, torch.Tensor]:
        f0_scaled = (core.hz_to_midi(f0_hz) / 127.0)[..., None]
        ld_scaled = (loudness_db / 120.0 + 1.0)[..., None]
        a, b = self.f0_mlp(f0_scaled), self.loudness_mlp(ld_scaled)
        x = torch.cat([a, b], dim=-1)
        y, hidden = self.gru(x, hidden)
        out = self.out(self.out_mlp(torch.cat([y, x], dim=-1)))
        return controls_from_outputs(out, f0_hz, self.config.n_harmonics, self.config.sample_rate), hidden


def controls_from_outputs(out: torch.Tensor, f0_hz: torch.Tensor, n_harmonics: int, sample_rate: int) -> Controls:
    """The network's raw outputs ``[B, F, 1 + K + M]`` (overall amplitude, harmonic distribution, noise
    magnitudes; DDSP's order) -> synthesizer controls, with DDSP's scalings: ``exp_sigmoid`` everywhere,
    the distribution zeroed above Nyquist and normalised, the noise biased by -5."""
    amplitude = core.exp_sigmoid(out[..., :1])
    distribution = core.exp_sigmoid(out[..., 1:1 + n_harmonics])
    distribution = core.remove_above_nyquist(distribution, f0_hz, sample_rate)
    distribution = distribution / distribution.sum(-1, keepdim=True).clamp_min(1e-7)
    noise = core.exp_sigmoid(out[..., 1 + n_harmonics:] - 5.0)
    return Controls(f0_hz, amplitude * distribution, noise)


@dataclass
class Instrument:
    """A loaded instrument: decoder + what its training data looked like."""

    decoder: DDSPDecoder
    stats: InstrumentStats = field(default_factory=InstrumentStats)

    @property
    def config(self) -> DecoderConfig:
        return self.decoder.config
