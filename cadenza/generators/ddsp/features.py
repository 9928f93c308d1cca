"""Frame features a DDSP decoder reads: f0 (with voicing confidence) and A-weighted loudness.

f0 comes from torchfcpe, whose weights ship in its PyPI wheel (~36x real time on one core here,
median error a few cents). Frames are 10 ms at 16 kHz (hop 160), frame ``k`` centred on sample
``k * hop``: ``N // hop + 1`` frames for ``N`` samples, the convention of both torchfcpe and
``core.a_weighted_loudness``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from cadenza.errors import MissingDependency
from cadenza.generators.ddsp import core

SAMPLE_RATE = 16000
HOP = 160
FCPE_MIN_HZ = 32.70


@dataclass
class Features:
    """``f0_hz [F]`` (unvoiced frames filled by interpolation), ``confidence [F]`` in [0, 1],
    ``loudness_db [F]``; all float32 numpy, 100 frames per second."""

    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray

    def __len__(self) -> int:
        return int(self.f0_hz.shape[0])


def n_frames(n_samples: int, hop: int = HOP) -> int:
    return n_samples // hop + 1


def loudness(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, hop: int = HOP) -> np.ndarray:
    """``audio [N]`` float32 -> ``[N // hop + 1]`` A-weighted loudness in dB (see ``core.a_weighted_loudness``)."""
    with torch.inference_mode():
        return core.a_weighted_loudness(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None],
                                        sample_rate, hop)[0].numpy()


class PitchTracker:
    """torchfcpe's bundled model: ``track(audio [N] at 16 kHz) -> (f0_hz [F], confidence [F])``; unvoiced
    frames (confidence below ``threshold``) get f0 0. Load once, call many times (not thread-safe)."""

    def __init__(self, device: str = "cpu") -> None:
        from cadenza.compat import import_with_shims

        try:
            (torchfcpe,) = import_with_shims("torchfcpe")
        except ImportError as exc:
            raise MissingDependency(f"pitch tracking needs torchfcpe ({exc}): pip install --no-deps torchfcpe") from exc
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # torchfcpe prints [INFO]/[WARN] lines while loading
            self.model = torchfcpe.spawn_bundled_infer_model(device)
        if self.model.get_model_sr() != SAMPLE_RATE or self.model.get_hop_size() != HOP:
            raise MissingDependency("this torchfcpe version uses other frames than 16 kHz / hop 160; install torchfcpe 0.0.4")

    def track(self, audio: np.ndarray, threshold: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """``audio [N]`` float32 at 16 kHz -> ``(f0_hz [N // 160 + 1], confidence [same])``."""
        wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, :, None]
        with torch.inference_mode():
            latent = self.model.model(self.model.wav2mel(wav, SAMPLE_RATE))  # [1, F, 360]
            cents = self.model.model.latent2cents_local_decoder(latent, mask=False)
            f0 = self.model.model.cent_to_f0(cents)[0, :, 0]
            confidence = latent.max(dim=-1).values[0]
        f0 = torch.where((confidence > threshold) & (f0 >= FCPE_MIN_HZ), f0, torch.zeros_like(f0))
        frames = n_frames(audio.shape[-1])
        return _fit(f0.numpy(), frames), _fit(confidence.numpy(), frames)


@functools.lru_cache(maxsize=1)
def default_tracker() -> PitchTracker:
    """One shared tracker per process (1.7 s to load)."""
    return PitchTracker()


def _fit(x: np.ndarray, frames: int) -> np.ndarray:
    x = x.astype(np.float32)
    if x.shape[0] >= frames:
        return x[:frames]
    return np.pad(x, (0, frames - x.shape[0]), mode="edge")


def fill_unvoiced(f0_hz: np.ndarray, default_hz: float = 440.0) -> np.ndarray:
    """Replace 0 Hz frames by interpolating (in pitch) between the voiced frames around them; the
    ends hold the nearest voiced value; all-unvoiced -> ``default_hz``. ``[F]`` -> ``[F]``."""
    voiced = f0_hz > 0
    if not voiced.any():
        return np.full_like(f0_hz, default_hz, dtype=np.float32)
    idx = np.arange(f0_hz.shape[0])
    pitch = np.log2(f0_hz[voiced])
    return (2.0 ** np.interp(idx, idx[voiced], pitch)).astype(np.float32)


def extract(audio: np.ndarray, tracker: PitchTracker | None = None) -> Features:
    """All features of ``audio [N]`` at 16 kHz."""
    tracker = tracker or default_tracker()
    f0, confidence = tracker.track(audio)
    return Features(fill_unvoiced(f0), confidence, loudness(audio))
