"""A stand-in ``torchaudio`` with just what audiocraft, torchcrepe and torchfcpe call.

- ``transforms.Spectrogram``: torch.stft with torchaudio's conventions (reflect padding when centred,
  ``normalized=True`` divides by the window's L2 norm, ``power`` None/1/2).
- ``transforms.MelSpectrogram``: that spectrogram times librosa's mel filterbank (torchaudio's defaults:
  HTK mel scale, no area normalisation).
- ``transforms.Resample``: julius' windowed-sinc resampler (``lowpass_filter_width`` -> zeros).
- ``transforms.Loudness``: ITU-R BS.1770 integrated loudness via pyloudnorm (LUFS).
- ``load`` / ``save`` / ``info``: soundfile (WAV, FLAC, OGG), channels-first float32 like torchaudio.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass

import numpy as np
import torch


class Spectrogram(torch.nn.Module):
    """``wav [..., T] -> spec [..., n_fft // 2 + 1, frames]`` (complex when ``power`` is None)."""

    def __init__(self, n_fft: int = 400, win_length: int | None = None, hop_length: int | None = None, pad: int = 0,
                 window_fn=torch.hann_window, power: float | None = 2.0, normalized: bool | str = False,
                 wkwargs: dict | None = None, center: bool = True, pad_mode: str = "reflect", onesided: bool = True,
                 return_complex: bool | None = None) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length or n_fft
        self.hop_length = hop_length or self.win_length // 2
        self.register_buffer("window", window_fn(self.win_length, **(wkwargs or {})), persistent=False)
        self.pad, self.power, self.center, self.pad_mode, self.onesided = pad, power, center, pad_mode, onesided
        if normalized not in (False, True, "window", "frame_length"):
            raise ValueError(f"normalized={normalized!r} is not supported by the torchaudio stand-in")
        self.normalized = normalized

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if self.pad > 0:
            wav = torch.nn.functional.pad(wav, (self.pad, self.pad))
        shape = wav.shape
        flat = wav.reshape(-1, shape[-1])
        spec = torch.stft(flat, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window.to(flat), center=self.center, pad_mode=self.pad_mode,
                          normalized=False, onesided=self.onesided, return_complex=True)
        if self.normalized in (True, "window"):
            spec = spec / self.window.pow(2).sum().sqrt()
        elif self.normalized == "frame_length":
            spec = spec / math.sqrt(self.win_length)
        spec = spec.reshape(shape[:-1] + spec.shape[-2:])
        if self.power is None:
            return spec
        return spec.abs().pow(self.power)


class MelSpectrogram(torch.nn.Module):
    """``wav [..., T] -> mel [..., n_mels, frames]``."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, win_length: int | None = None,
                 hop_length: int | None = None, f_min: float = 0.0, f_max: float | None = None, pad: int = 0,
                 n_mels: int = 128, window_fn=torch.hann_window, power: float = 2.0, normalized: bool = False,
                 wkwargs: dict | None = None, center: bool = True, pad_mode: str = "reflect", onesided: bool = True,
                 norm: str | None = None, mel_scale: str = "htk") -> None:
        super().__init__()
        import librosa

        if mel_scale not in ("htk", "slaney") or norm not in (None, "slaney"):
            raise ValueError(f"mel_scale={mel_scale!r}, norm={norm!r} are not supported by the torchaudio stand-in")
        self.spectrogram = Spectrogram(n_fft=n_fft, win_length=win_length, hop_length=hop_length, pad=pad,
                                       window_fn=window_fn, power=power, normalized=normalized, wkwargs=wkwargs,
                                       center=center, pad_mode=pad_mode, onesided=onesided)
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max or sample_rate / 2,
                                 htk=mel_scale == "htk", norm=norm)
        self.register_buffer("fb", torch.from_numpy(fb.astype(np.float32)), persistent=False)  # [n_mels, n_freq]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(wav)
        return torch.matmul(self.fb.to(spec), spec)


class Resample(torch.nn.Module):
    """``wav [..., T] at orig_freq -> [..., T * new / orig]`` (julius' sinc resampler)."""

    def __init__(self, orig_freq: int = 16000, new_freq: int = 16000, resampling_method: str = "sinc_interp_hann",
                 lowpass_filter_width: int = 6, rolloff: float = 0.99, beta: float | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        import julius

        self.orig_freq, self.new_freq = int(orig_freq), int(new_freq)
        gcd = math.gcd(self.orig_freq, self.new_freq)
        self.resampler = None
        if self.orig_freq != self.new_freq:
            self.resampler = julius.ResampleFrac(self.orig_freq // gcd, self.new_freq // gcd,
                                                 zeros=lowpass_filter_width, rolloff=rolloff)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if self.resampler is None:
            return wav
        return self.resampler(wav)


class Loudness(torch.nn.Module):
    """``wav [C, T]`` (or ``[T]``) -> integrated loudness in LUFS, a 0-d tensor (ITU-R BS.1770-4)."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        import pyloudnorm

        data = wav.detach().to(torch.float64).cpu().numpy()
        data = data.reshape(-1, data.shape[-1]).T  # [T, C]
        meter = pyloudnorm.Meter(self.sample_rate)
        return torch.tensor(meter.integrated_loudness(data), dtype=wav.dtype)


@dataclass
class AudioMetaData:
    sample_rate: int
    num_frames: int
    num_channels: int
    bits_per_sample: int = 0
    encoding: str = ""


def load(path, frame_offset: int = 0, num_frames: int = -1, normalize: bool = True, channels_first: bool = True,
         format: str | None = None, backend: str | None = None) -> tuple[torch.Tensor, int]:
    """``(wav [C, T] float32, sample_rate)`` read with soundfile."""
    import soundfile

    data, sample_rate = soundfile.read(path, start=frame_offset, frames=num_frames, dtype="float32", always_2d=True)
    wav = torch.from_numpy(np.ascontiguousarray(data.T if channels_first else data))
    return wav, int(sample_rate)


def save(path, src: torch.Tensor, sample_rate: int, channels_first: bool = True, format: str | None = None,
         encoding: str | None = None, bits_per_sample: int | None = None, backend: str | None = None, **_) -> None:
    """Write ``src [C, T]`` (or ``[T, C]`` with channels_first False) with soundfile."""
    import soundfile

    data = src.detach().cpu().float().numpy()
    if data.ndim == 1:
        data = data[None]
    soundfile.write(path, data.T if channels_first else data, int(sample_rate), format=format)


def info(path, format: str | None = None, backend: str | None = None) -> AudioMetaData:
    import soundfile

    meta = soundfile.info(path)
    return AudioMetaData(sample_rate=int(meta.samplerate), num_frames=int(meta.frames), num_channels=int(meta.channels))


def _give_specs(modules: dict[str, types.ModuleType]) -> None:
    """``importlib.util.find_spec`` raises on a module whose ``__spec__`` is None; give each one."""
    import importlib.machinery

    for name, module in modules.items():
        module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, origin="cadenza.compat")


def build_modules() -> dict[str, types.ModuleType]:
    """``{'torchaudio': ..., 'torchaudio.transforms': ..., 'torchaudio.functional': ...}`` for ``sys.modules``."""
    root = types.ModuleType("torchaudio")
    root.__doc__ = __doc__
    root.__version__ = "0.0+cadenza-shim"
    root.__cadenza_shim__ = True
    transforms = types.ModuleType("torchaudio.transforms")
    for cls in (Spectrogram, MelSpectrogram, Resample, Loudness):
        setattr(transforms, cls.__name__, cls)
    functional = types.ModuleType("torchaudio.functional")

    def resample(waveform: torch.Tensor, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
                 rolloff: float = 0.99, **_) -> torch.Tensor:
        return Resample(orig_freq, new_freq, lowpass_filter_width=lowpass_filter_width, rolloff=rolloff)(waveform)

    functional.resample = resample
    root.transforms, root.functional = transforms, functional
    root.load, root.save, root.info, root.AudioMetaData = load, save, info, AudioMetaData
    modules = {"torchaudio": root, "torchaudio.transforms": transforms, "torchaudio.functional": functional}
    _give_specs(modules)
    return modules
