"""Our small neural audio codec, built from audiocraft's own modules (SEANet encoder/decoder + residual
vector quantizer inside audiocraft's `EncodecModel`), so the codec LM code treats it exactly like a
MusicGen compression model.

The same codec gives the diffusion family its latent space: ``encoder(wav)`` before quantization is a
continuous ``[B, dimension, frames]`` latent at ``frame_rate`` Hz, and ``decoder(latent)`` turns it back
into audio.

Training builds audiocraft's ``EncodecModel`` (``build_codec``: its forward pass and losses); loading for
inference (``load_codec``) builds `Codec`, the same modules and state-dict layout with only what encoding
and decoding need, from audiocraft's SEANet and quantizer modules alone: importing all of audiocraft
(its conditioners, data, solvers, metrics) took ~5 s of every cold start.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cadenza.errors import CheckpointError


@dataclass(frozen=True)
class CodecConfig:
    """SEANet + RVQ hyper-parameters. ``frame_rate = sample_rate / prod(ratios)`` must be whole."""

    sample_rate: int = 16000
    channels: int = 1
    n_filters: int = 16
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    dimension: int = 64
    n_residual_layers: int = 1
    lstm: int = 1
    n_q: int = 4
    bins: int = 1024
    decoder: str = "seanet"  # "seanet" (audiocraft's) or "istft" (frame-rate ConvNeXt + inverse STFT)
    decoder_dim: int = 256  # istft decoder only: ConvNeXt width
    decoder_layers: int = 8  # istft decoder only: ConvNeXt blocks

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", tuple(int(r) for r in self.ratios))
        if self.decoder not in ("seanet", "istft"):
            raise CheckpointError(f"codec: unknown decoder {self.decoder!r} (seanet or istft)")
        if self.sample_rate % self.hop_length:
            raise CheckpointError(f"codec: sample_rate {self.sample_rate} is not a multiple of the hop {self.hop_length}")

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> int:
        return self.sample_rate // self.hop_length

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ratios"] = list(self.ratios)
        if self.decoder == "seanet":  # configs written before the istft decoder existed stay identical
            for name in ("decoder", "decoder_dim", "decoder_layers"):
                data.pop(name)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CodecConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise CheckpointError(f"codec config has unknown fields: {', '.join(sorted(unknown))}")
        return cls(**data)


def build_codec(config: CodecConfig | dict):
    """A freshly initialised audiocraft ``EncodecModel`` for ``config`` (not renormalising, non-causal).

    ``model.encode(wav [B, C, T]) -> (codes [B, n_q, frames] long, None)``; ``model.decode(codes) -> wav``.
    """
    from cadenza.compat import import_audiocraft

    import_audiocraft()
    from audiocraft.models.encodec import EncodecModel

    if isinstance(config, dict):
        config = CodecConfig.from_dict(config)
    encoder, decoder, quantizer = _modules(config, audiocraft_parts=False)
    return EncodecModel(encoder, decoder, quantizer, frame_rate=config.frame_rate, sample_rate=config.sample_rate,
                        channels=config.channels, causal=False, renormalize=False)


def _modules(config: CodecConfig, *, audiocraft_parts: bool):
    """``(encoder, decoder, quantizer)`` for ``config``, from audiocraft's SEANet and RVQ modules."""
    if audiocraft_parts:
        from cadenza.compat import import_audiocraft_parts

        seanet_module, quantization = import_audiocraft_parts("audiocraft.modules.seanet", "audiocraft.quantization")
        SEANetEncoder, SEANetDecoder = seanet_module.SEANetEncoder, seanet_module.SEANetDecoder
        ResidualVectorQuantizer = quantization.ResidualVectorQuantizer
    else:
        from audiocraft.modules.seanet import SEANetDecoder, SEANetEncoder
        from audiocraft.quantization import ResidualVectorQuantizer
    seanet = dict(channels=config.channels, dimension=config.dimension, n_filters=config.n_filters,
                  n_residual_layers=config.n_residual_layers, ratios=list(config.ratios), lstm=config.lstm,
                  norm="weight_norm", causal=False, pad_mode="constant")
    quantizer = ResidualVectorQuantizer(dimension=config.dimension, n_q=config.n_q, bins=config.bins, q_dropout=False,
                                        decay=0.99, kmeans_init=True, kmeans_iters=10, threshold_ema_dead_code=2)
    decoder = SEANetDecoder(**seanet) if config.decoder == "seanet" else build_istft_decoder(config)
    return SEANetEncoder(**seanet), decoder, quantizer


class Codec(torch.nn.Module):
    """The codec for inference: what audiocraft's ``EncodecModel`` (not renormalising) does to encode and
    decode, with the same children (``encoder``, ``decoder``, ``quantizer``) and so the same state dict.

    ``encode(wav [B, C, T]) -> (codes [B, n_q, frames] long, None)``; ``decode(codes, None) -> wav [B, C, T']``.
    """

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.encoder, self.decoder, self.quantizer = _modules(config, audiocraft_parts=True)
        self.frame_rate = config.frame_rate
        self.sample_rate = config.sample_rate
        self.channels = config.channels

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def total_codebooks(self) -> int:
        return self.quantizer.total_codebooks

    @property
    def cardinality(self) -> int:
        return self.quantizer.bins

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        if x.dim() != 3:
            raise ValueError(f"codec input must be [B, C, T], got {tuple(x.shape)}")
        return self.quantizer.encode(self.encoder(x)), None

    def decode(self, codes: torch.Tensor, scale: None = None) -> torch.Tensor:
        if scale is not None:
            raise ValueError("this codec does not renormalise: decode takes no scale")
        return self.decoder(self.quantizer.decode(codes))


def build_istft_decoder(config: CodecConfig):
    """The frame-rate inverse-STFT decoder for ``config`` (`cadenza.codec.istft_decoder`)."""
    from cadenza.codec.istft_decoder import ISTFTDecoder, ISTFTDecoderConfig

    return ISTFTDecoder(ISTFTDecoderConfig(dimension=config.dimension, hop=config.hop_length, dim=config.decoder_dim,
                                           layers=config.decoder_layers))


def codec_state_dict(model) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors of ``model``'s state, ready for ``safetensors.torch.save_file``."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def load_codec(path: str | os.PathLike, config: CodecConfig | dict, device: str | torch.device = "cpu"):
    """The `Codec` of ``config`` with weights from the safetensors file ``path`` (strict), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path.name}: codec weights load from .safetensors only")
    model = Codec(CodecConfig.from_dict(config) if isinstance(config, dict) else config)
    missing, unexpected = model.load_state_dict(load_file(path), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path.name} does not match the codec config: missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}")
    return model.to(device).eval()


@dataclass(frozen=True)
class ReconstructionMetrics:
    """Codec quality on held-out audio: multi-scale mel L1 distance (log-mel, lower is better) and
    SI-SNR in dB (higher is better)."""

    mel_distance: float
    si_snr_db: float
    clips: int = 0
    extra: dict = field(default_factory=dict)
