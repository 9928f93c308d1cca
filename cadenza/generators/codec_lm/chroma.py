"""Chroma features for melody conditioning, computed as audiocraft's ``ChromaExtractor`` does.

A power spectrogram (Hann window, centred, reflect padding, window-normalised as torchaudio's
``Spectrogram(normalized=True)``) is folded onto ``n_chroma`` pitch classes with librosa's chroma
filter bank (``tuning=0``, index 0 = C), each frame is scaled to a maximum of 1 and, with ``argmax``,
reduced to a one-hot of its strongest pitch class. Written on torch.stft rather than through the
torchaudio stand-in so this module has no audiocraft or torchaudio dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class ChromaSettings:
    """``n_fft = 2 ** radix2_exp`` samples per window, hop ``n_fft // 4`` (audiocraft's defaults)."""

    sample_rate: int
    n_chroma: int = 12
    radix2_exp: int = 12
    argmax: bool = True

    @property
    def n_fft(self) -> int:
        return 2 ** self.radix2_exp

    @property
    def hop_length(self) -> int:
        return self.n_fft // 4

    def n_frames(self, n_samples: int) -> int:
        """Chroma frames for ``n_samples`` of audio (centred STFT; short inputs are padded to one window)."""
        return 1 + max(n_samples, self.n_fft) // self.hop_length


def chroma(wav: torch.Tensor, settings: ChromaSettings) -> torch.Tensor:
    """``wav [B, N]`` or ``[B, 1, N]`` float -> ``chroma [B, frames, n_chroma]`` float32 in [0, 1]
    (one-hot per frame when ``settings.argmax``). Inputs shorter than a window are zero-padded to one,
    as audiocraft does for a nullified melody."""
    import librosa

    if wav.dim() == 3:
        if wav.shape[1] != 1:
            raise ValueError(f"chroma needs mono audio, got {wav.shape[1]} channels")
        wav = wav[:, 0]
    wav = wav.float()
    n_fft = settings.n_fft
    if wav.shape[-1] < n_fft:
        pad = n_fft - wav.shape[-1]
        wav = F.pad(wav, (pad // 2, pad // 2 + pad % 2))
    window = torch.hann_window(n_fft, device=wav.device)
    spec = torch.stft(wav, n_fft, hop_length=settings.hop_length, win_length=n_fft, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    power = spec.abs().pow(2) / window.pow(2).sum()  # torchaudio's normalized=True, then power 2
    banks = torch.from_numpy(librosa.filters.chroma(sr=settings.sample_rate, n_fft=n_fft, tuning=0,
                                                    n_chroma=settings.n_chroma)).to(power)
    raw = torch.einsum("cf,bft->bct", banks, power)
    norm = F.normalize(raw, p=float("inf"), dim=-2, eps=1e-6).transpose(1, 2)  # [B, T, C]
    if settings.argmax:
        norm = F.one_hot(norm.argmax(-1), settings.n_chroma).to(norm.dtype)
    return norm


def match_length(features: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, T, C]`` -> ``[B, length, C]``: truncated, or tiled from the start (audiocraft's
    ``match_len_on_eval``: a short melody repeats to fill the model's window)."""
    t = features.shape[1]
    if t >= length:
        return features[:, :length]
    reps = -(-length // t)
    return features.repeat(1, reps, 1)[:, :length]


def dominant_pitch_class(features: torch.Tensor) -> str:
    """Name of the pitch class most often strongest in ``features [T, 12]`` (for tests and notes)."""
    counts = F.one_hot(features.argmax(-1), features.shape[-1]).sum(0)
    return PITCH_CLASSES[int(counts.argmax())]
