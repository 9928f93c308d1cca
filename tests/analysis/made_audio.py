"""Audio made in code for the transcription tests: harmonic tones with an attack and decay (an
instrument), and a hummed line (a sine-ish voice that glides between notes, with vibrato and breath
noise). Nothing is read from disk."""

from __future__ import annotations

import numpy as np

SR = 22050


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def tones(notes: list[tuple[float, float, int]], seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """``[N]`` float32: each ``(onset_s, length_s, pitch)`` as 8 decaying harmonics with a 10 ms attack."""
    out = np.zeros(int(seconds * sr))
    for onset, length, pitch in notes:
        n = int(length * sr)
        t = np.arange(n) / sr
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t) * np.minimum(1.0, (length - t) / 0.02)
        wave = sum(np.sin(2 * np.pi * k * midi_hz(pitch) * t) / k for k in range(1, 9))
        start = int(onset * sr)
        out[start:start + n] += 0.2 * envelope * wave[: out.shape[0] - start]
    out += 1e-4 * np.random.default_rng(seed).standard_normal(out.shape[0])
    return out.astype(np.float32)


def hum(pitches: list[int], note_s: float = 0.5, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A hummed line ``[N]``: one note per pitch, ``note_s`` each, gliding 60 ms into the next, +-30 cents
    of 5.5 Hz vibrato, a short breath (dip in level) between notes, 5 harmonics and breath noise."""
    rng = np.random.default_rng(seed)
    per = int(note_s * sr)
    n = per * len(pitches) + sr // 2
    t = np.arange(n) / sr
    target = np.repeat(np.asarray(pitches, dtype=np.float64), per)
    target = np.concatenate([target, np.full(n - target.shape[0], pitches[-1])])
    glide = int(0.06 * sr)
    smoothed = np.convolve(np.pad(target, (glide, glide), mode="edge"), np.ones(glide) / glide, mode="same")[glide:-glide]
    pitch = smoothed + 0.3 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(midi_hz(69) * 2.0 ** ((pitch - 69) / 12)) / sr
    level = np.ones(n)
    for k in range(1, len(pitches)):  # a breath between notes
        level[k * per - int(0.03 * sr):k * per + int(0.01 * sr)] = 0.35
    level[per * len(pitches):] = 0.0
    level = np.convolve(level, np.ones(80) / 80, mode="same")
    voice = sum(np.sin(k * phase) * 0.6 ** k for k in range(1, 6))
    return (0.25 * level * voice + 0.004 * rng.standard_normal(n)).astype(np.float32)


