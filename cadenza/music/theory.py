"""Keys, meters and key finding: the small amount of music theory the studio needs.

Key finding is Krumhansl-Schmuckler: correlate a duration-weighted pitch-class histogram with the
Krumhansl-Kessler major/minor profiles rotated to each of the 12 tonics, pick the best of 24.
Written here (not music21's analyser) because it runs on a 12-float histogram in microseconds, which the
training sampler needs for every random chunk, and the benchmark uses the same function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from cadenza.errors import InvalidConditioning

PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1, "##": 2, "bb": -2}

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor plus the raised leading tone


@dataclass(frozen=True)
class Key:
    """A tonal centre: ``tonic`` pitch class 0-11 (C=0) and ``mode`` 'major' or 'minor'."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        return f"{PITCH_CLASS_NAMES[self.tonic]} {self.mode}"

    @property
    def index(self) -> int:
        """0-11 major keys, 12-23 minor keys."""
        return self.tonic + (12 if self.mode == "minor" else 0)

    def scale_pitch_classes(self) -> tuple[int, ...]:
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return tuple((self.tonic + s) % 12 for s in steps)

    def transpose(self, semitones: int) -> Key:
        return Key((self.tonic + semitones) % 12, self.mode)

    def __str__(self) -> str:
        return self.name


ALL_KEYS: tuple[Key, ...] = tuple(Key(pc, mode) for mode in ("major", "minor") for pc in range(12))

_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*(##|bb|#|b|♯|♭)?\s*(major|minor|maj|min|m)?\s*$", re.IGNORECASE)


def parse_key(text: str) -> Key:
    """Parse 'D major', 'F# minor', 'Bb', 'ebm', 'C#min' into a :class:`Key`.

    A bare letter means major; a trailing 'm' means minor. Raises InvalidConditioning otherwise.
    """
    if not isinstance(text, str):
        raise InvalidConditioning(f"key must be text like 'D major' or 'F# minor', got {text!r}")
    match = _KEY_RE.match(text)
    if not match:
        raise InvalidConditioning(
            f"unknown key {text!r}: write a note name A-G, optional # or b, then 'major' or 'minor' (e.g. 'F# minor')")
    letter, accidental, mode = match.groups()
    tonic = (_LETTER_PC[letter.upper()] + _ACCIDENTAL[accidental or ""]) % 12
    mode = (mode or "major").lower()
    return Key(tonic, "minor" if mode in ("minor", "min", "m") else "major")


@dataclass(frozen=True)
class TimeSignature:
    numerator: int
    denominator: int

    @property
    def name(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def quarters_per_bar(self) -> float:
        return self.numerator * 4.0 / self.denominator

    def __str__(self) -> str:
        return self.name


def parse_time_signature(text: str) -> TimeSignature:
    """Parse '3/4' or '6/8'. The denominator must be 1, 2, 4, 8, 16 or 32; numerator 1-32."""
    match = re.match(r"^\s*(\d{1,2})\s*/\s*(\d{1,2})\s*$", str(text))
    if not match:
        raise InvalidConditioning(f"time signature {text!r} is not of the form N/D, e.g. 3/4 or 6/8")
    num, den = int(match.group(1)), int(match.group(2))
    if den not in (1, 2, 4, 8, 16, 32) or not 1 <= num <= 32:
        raise InvalidConditioning(f"time signature {text!r} is not playable: denominator must be a power of two up to 32")
    return TimeSignature(num, den)


def key_correlations(pitch_class_histogram: np.ndarray) -> np.ndarray:
    """Pearson correlation of a histogram ``[12]`` with all 24 key profiles -> ``[24]`` (index = Key.index)."""
    hist = np.asarray(pitch_class_histogram, dtype=np.float64)
    if hist.shape != (12,):
        raise ValueError(f"expected a [12] pitch-class histogram, got shape {hist.shape}")
    out = np.empty(24)
    for mode_offset, profile in ((0, MAJOR_PROFILE), (12, MINOR_PROFILE)):
        for tonic in range(12):
            out[mode_offset + tonic] = np.corrcoef(hist, np.roll(profile, tonic))[0, 1] if hist.std() > 0 else 0.0
    return out


def estimate_key(pitch_class_histogram: np.ndarray) -> Key:
    """Krumhansl-Schmuckler key of a duration-weighted pitch-class histogram ``[12]``."""
    return ALL_KEYS[int(np.argmax(key_correlations(pitch_class_histogram)))]


def score_pitch_class_histogram(score) -> np.ndarray:
    """Duration-weighted pitch-class histogram ``[12]`` of a symusic score's pitched (non-drum) tracks."""
    arrays = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    if not arrays:
        return np.zeros(12)
    return pitch_class_histogram(np.concatenate([a["pitch"] for a in arrays]),
                                 np.concatenate([a["duration"] for a in arrays]))


def pitch_class_histogram(pitches: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Duration-weighted pitch-class histogram ``[12]`` of notes (MIDI pitches, durations in any unit)."""
    hist = np.zeros(12)
    np.add.at(hist, np.asarray(pitches, dtype=np.int64) % 12, np.asarray(durations, dtype=np.float64))
    return hist
