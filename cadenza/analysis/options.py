"""`TranscribeOptions`: how to turn audio into notes, passed per call (frozen, validated)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from cadenza.errors import InvalidConditioning, UnsupportedConditioning

MODES = ("poly", "mono")
# Basic Pitch's own defaults (its CLI: onset 0.5, frame 0.3, 127.7 ms = 11 frames at 86.13 frames/s).
POLY_MIN_NOTE_MS = 127.7
MONO_MIN_NOTE_MS = 80.0
GRIDS = {"1/4": 1, "1/8": 2, "1/16": 4, "1/8t": 3, "1/16t": 6}  # grid -> steps per quarter note


@dataclass(frozen=True)
class TranscribeOptions:
    """How to transcribe.

    ``mode``: ``"poly"`` (any number of notes at once: Basic Pitch's model) or ``"mono"`` (one line: a
    voice, a whistle, a solo instrument; notes from the f0 tracker torchfcpe, its confidence and the
    loudness). ``onset_threshold`` / ``frame_threshold`` (0-1, poly): how sure the model must be that a
    note starts / still sounds (lower: more notes). ``voicing_threshold`` (0-1, mono): the tracker
    confidence above which a frame is pitched. ``min_note_ms``: shorter notes are dropped (None: 127.7
    ms poly, 80 ms mono). ``pitch_range``: lowest and highest MIDI pitch kept (21-108 = the piano).
    ``pitch_bends`` (poly): keep each note's bend curve (written as MIDI pitch bends where notes do not
    overlap). ``quantize``: snap notes to a grid of ``grid`` steps ('1/16', '1/8', '1/4', '1/8t',
    '1/16t') in the detected tempo and meter, bars aligned to the strongest beats, so that the result
    is easy to edit and to continue. ``tempo_bpm`` / ``time_signature``: use these instead of the
    detected ones. ``chunk_s``: seconds decoded at a time (memory stays bounded for inputs of any
    length; notes crossing a chunk boundary are joined up to ``chunk_s / 4`` seconds past it).
    """

    mode: str = "poly"
    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    voicing_threshold: float = 0.5
    min_note_ms: float | None = None
    pitch_range: tuple[int, int] = (21, 108)
    pitch_bends: bool = False
    quantize: bool = False
    grid: str = "1/16"
    tempo_bpm: float | None = None
    time_signature: str | None = None
    chunk_s: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidConditioning(f"transcription mode {self.mode!r} is not one of {', '.join(MODES)}")
        for name in ("onset_threshold", "frame_threshold", "voicing_threshold"):
            value = getattr(self, name)
            if not _number(value) or not 0.0 < value < 1.0:
                raise InvalidConditioning(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
        if self.min_note_ms is not None and (not _number(self.min_note_ms) or not 0 <= self.min_note_ms <= 10_000):
            raise InvalidConditioning(f"min_note_ms must be 0-10000 ms, got {self.min_note_ms!r}")
        low_high = self.pitch_range
        if (isinstance(low_high, str) or len(low_high) != 2 or not all(isinstance(p, int) and not isinstance(p, bool)
                                                                    for p in low_high)
                or not 0 <= low_high[0] <= low_high[1] <= 127):
            raise InvalidConditioning(f"pitch_range must be (low, high) MIDI pitches, 0 <= low <= high <= 127, "
                                      f"got {low_high!r}")
        object.__setattr__(self, "pitch_range", (int(low_high[0]), int(low_high[1])))
        if self.grid not in GRIDS:
            raise InvalidConditioning(f"grid {self.grid!r} is not one of {', '.join(GRIDS)}")
        if self.tempo_bpm is not None and (not _number(self.tempo_bpm) or not 20 <= self.tempo_bpm <= 300):
            raise InvalidConditioning(f"tempo {self.tempo_bpm!r} BPM is outside 20-300")
        if self.time_signature is not None:
            from cadenza.music.theory import parse_time_signature

            object.__setattr__(self, "time_signature", parse_time_signature(self.time_signature).name)
        if not _number(self.chunk_s) or not 4.0 <= self.chunk_s <= 600.0:
            raise InvalidConditioning(f"chunk_s must be 4-600 seconds, got {self.chunk_s!r}")

    @property
    def min_note_s(self) -> float:
        """The shortest note kept, in seconds (the mode's default when ``min_note_ms`` is None)."""
        ms = self.min_note_ms if self.min_note_ms is not None else (POLY_MIN_NOTE_MS if self.mode == "poly"
                                                                   else MONO_MIN_NOTE_MS)
        return ms / 1000.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["pitch_range"] = list(self.pitch_range)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TranscribeOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UnsupportedConditioning(f"transcription has no option {', '.join(map(repr, unknown))}; "
                                      f"its options: {', '.join(sorted(known))}")
        data = dict(data)
        if isinstance(data.get("pitch_range"), list):
            data["pitch_range"] = tuple(data["pitch_range"])
        return cls(**data)


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
