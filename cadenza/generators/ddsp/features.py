"""Frame features a DDSP decoder reads: f0 (with voicing confidence) and A-weighted loudness.

f0 comes from torchfcpe (``cadenza.analysis.pitch.PitchTracker``, shared with the transcriber). Frames are 10 ms at 16 kHz (hop 160), frame ``k`` centred on sample
``k * hop``: ``N // hop + 1`` frames for ``N`` samples, the convention of both torchfcpe and
``core.a_weighted_loudness``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

# The pitch tracker lives in cadenza.analysis (the transcriber uses it too); its names stay importable here.
from cadenza.analysis.pitch import FCPE_MIN_HZ, HOP, SAMPLE_RATE, PitchTracker, n_frames  # noqa: F401
from cadenza.generators.ddsp import core


@dataclass
class Features:
    """``f0_hz [F]`` (unvoiced frames filled by interpolation), ``confidence [F]`` in [0, 1],
    ``loudness_db [F]``; all float32 numpy, 100 frames per second."""

    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray

    def __len__(self) -> int:
        return int(self.f0_hz.shape[0])


def loudness(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, hop: int = HOP) -> np.ndarray:
    """``audio [N]`` float32 -> ``[N // hop + 1]`` A-weighted loudness in dB (see ``core.a_weighted_loudness``)."""
    with torch.inference_mode():
        return core.a_weighted_loudness(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None],
                                        sample_rate, hop)[0].numpy()


@functools.lru_cache(maxsize=1)
def default_tracker() -> PitchTracker:
    """One shared tracker per process (1.7 s to load)."""
    return PitchTracker()


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
