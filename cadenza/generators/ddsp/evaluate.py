"""Measures of a transfer or render: pitch error in cents, spectral centroid, harmonic profile.

All take 16 kHz mono ``[N]`` float32 audio and 100 frames/s features (see ``features``).
"""

from __future__ import annotations

import numpy as np

from cadenza.generators.ddsp.features import HOP, SAMPLE_RATE


def cents_error(reference_hz: np.ndarray, estimate_hz: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``|1200 log2(estimate / reference)|`` on frames where ``mask`` and both are > 0; ``[M]``."""
    n = min(len(reference_hz), len(estimate_hz), len(mask))
    ref, est, m = reference_hz[:n], estimate_hz[:n], mask[:n]
    m = m & (ref > 0) & (est > 0)
    return np.abs(1200.0 * np.log2(est[m] / ref[m]))


def frame_spectra(audio: np.ndarray, n_fft: int = 2048) -> np.ndarray:
    """Magnitude spectra ``[frames, n_fft // 2 + 1]`` at 100 frames/s (Hann window, centred)."""
    padded = np.pad(audio.astype(np.float64), (n_fft // 2, n_fft // 2))
    count = len(audio) // HOP + 1
    index = np.arange(n_fft)[None, :] + HOP * np.arange(count)[:, None]
    index = np.minimum(index, len(padded) - 1)
    return np.abs(np.fft.rfft(padded[index] * np.hanning(n_fft), axis=1))


def spectral_centroid(audio: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Median spectral centroid in Hz over the frames in ``mask`` (default: frames above -60 dB of the peak)."""
    spec = frame_spectra(audio)
    freqs = np.fft.rfftfreq(2048, 1.0 / SAMPLE_RATE)
    energy = spec.sum(axis=1)
    if mask is None:
        mask = energy > energy.max() * 1e-3
    n = min(len(energy), len(mask))
    spec, energy = spec[:n], energy[:n]
    mask = mask[:n] & (energy > 0)
    if not mask.any():
        return 0.0
    centroid = (spec[mask] * freqs).sum(axis=1) / energy[mask]
    return float(np.median(centroid))


def harmonic_profile(audio: np.ndarray, f0_hz: np.ndarray, mask: np.ndarray, harmonics: int = 8) -> list[float]:
    """Median level of harmonics 1..``harmonics`` in dB relative to the strongest, over frames in ``mask``
    (the magnitude at the bin nearest ``k * f0``, max over +-1 bin)."""
    spec = frame_spectra(audio)
    n = min(len(spec), len(f0_hz), len(mask))
    frames = np.nonzero(mask[:n] & (f0_hz[:n] > 0))[0]
    if frames.size == 0:
        return [float("nan")] * harmonics
    bins = np.rint(np.outer(f0_hz[frames], np.arange(1, harmonics + 1)) * 2048 / SAMPLE_RATE).astype(int)
    bins = np.clip(bins, 1, spec.shape[1] - 2)
    levels = np.maximum.reduce([spec[frames[:, None], bins + d] for d in (-1, 0, 1)])
    db = 20 * np.log10(levels + 1e-9)
    db = db - db.max(axis=1, keepdims=True)
    return [round(float(x), 1) for x in np.median(db, axis=0)]
