"""Order candidates by a quality score computed offline from the audio alone (no model).

Diffusion samples fail in a few measurable ways: silence, clipping, a DC offset, and noise where music
should be. The score adds penalties for each:

- ``flatness``: mean spectral flatness (Wiener entropy, 0 = pure tones .. 1 = white noise) of the frames
  that are not silent; music sits around 0.01-0.2, hiss near 0.5+. Penalty = flatness.
- ``clipped``: fraction of samples at |x| >= 0.999. Penalty = 20 * clipped.
- ``silent``: RMS below -50 dBFS over the whole clip. Penalty = 1.
- ``dc``: |mean| of the signal. Penalty = 2 * dc.

Score = -(sum of penalties); higher is better. Text-audio agreement needs a CLAP-like model: AudioLDM2
carries one, and the generator ranks its candidates by it instead (``AudioLDM2Backend.text_audio_scores``);
Stable Audio and our own model have none, so they are ranked by this score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SILENCE_DBFS = -50.0


@dataclass(frozen=True)
class Quality:
    """The measured penalties of one candidate and its ``score`` (higher is better)."""

    score: float
    flatness: float
    clipped: float
    silent: bool
    dc: float

    def to_dict(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def spectral_flatness(samples: np.ndarray, frame: int = 1024) -> float:
    """Mean spectral flatness of the non-silent frames of ``samples [C, N]`` (channels averaged); 0 when silent."""
    mono = samples.mean(axis=0)
    if mono.shape[0] < frame:
        mono = np.pad(mono, (0, frame - mono.shape[0]))
    n = mono.shape[0] // frame
    frames = mono[: n * frame].reshape(n, frame) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    loud = frames.std(axis=1) > 10 ** (SILENCE_DBFS / 20)
    if not loud.any():
        return 0.0
    power = power[loud]
    flat = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    return float(flat.mean())


def quality(samples: np.ndarray) -> Quality:
    """Score ``samples [C, N] float32`` (see the module doc for the terms)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    silent = rms < 10 ** (SILENCE_DBFS / 20)
    flatness = spectral_flatness(samples)
    clipped = float(np.mean(np.abs(samples) >= 0.999)) if samples.size else 0.0
    dc = float(abs(samples.mean())) if samples.size else 0.0
    score = -(flatness + 20.0 * clipped + (1.0 if silent else 0.0) + 2.0 * dc)
    return Quality(score=score, flatness=flatness, clipped=clipped, silent=silent, dc=dc)


def rank(candidates: list[np.ndarray]) -> tuple[list[int], list[Quality]]:
    """Indices of ``candidates`` best-first (stable for ties) and each candidate's `Quality` (input order)."""
    scores = [quality(c) for c in candidates]
    order = sorted(range(len(candidates)), key=lambda i: -scores[i].score)
    return order, scores
