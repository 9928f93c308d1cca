"""`Transcription`, what the transcriber returns: notes in seconds, tempo, meter, key and the grid they
were (or can be) written on, and ``to_score()`` for a MIDI file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import symusic

from cadenza.analysis.quantize import TICKS_PER_QUARTER, Grid, quantize_notes
from cadenza.music.theory import parse_key, parse_time_signature

BEND_RANGE_SEMITONES = 2  # the General MIDI default pitch-bend range
_SHARPS = {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: 6, 5: -1, 10: -2, 3: -3, 8: -4, 1: -5}  # major tonic -> sharps


class Note(NamedTuple):
    """One note: ``onset_s`` and ``offset_s`` in seconds, ``pitch`` a MIDI number, ``velocity`` 1-127."""

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Transcription:
    """Notes heard in a recording.

    ``notes [N, 4]`` float64 rows ``(onset_s, offset_s, midi_pitch, velocity 1-127)``, sorted by onset then
    pitch, in the recording's own time (never quantised: ``to_score`` snaps them when ``grid`` has steps).
    ``duration_s``: the recording's length. ``tempo_bpm``: quarter notes per minute (detected, or as asked).
    ``time_signature``, ``key`` ('D major'; None without notes) and ``grid`` (bar lines and, when quantising,
    the step). ``mode``: 'poly' or 'mono'. ``bends``: per note, its pitch bend per model frame (86.13 a
    second) in 1/3 semitones, or () when bends were not asked for. ``message``: why there are no notes or
    what to beware of (silence, noise, clipping), else None. ``peak``: the largest ``|sample|``;
    ``clipped_fraction``: samples at full scale.
    """

    notes: np.ndarray
    duration_s: float
    tempo_bpm: float
    time_signature: str
    key: str | None
    grid: Grid
    mode: str
    bends: tuple[np.ndarray, ...] = ()
    message: str | None = None
    peak: float = 0.0
    clipped_fraction: float = 0.0
    timings_s: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return int(self.notes.shape[0])

    @property
    def note_list(self) -> list[Note]:
        """The notes as `Note` tuples."""
        return [Note(float(a), float(b), int(p), int(v)) for a, b, p, v in self.notes]

    @property
    def quantized(self) -> bool:
        return self.grid.steps_per_quarter > 0

    def to_score(self, program: int = 0) -> symusic.Score:
        """A one-track MIDI score (``symusic.Score``, 480 ticks a quarter) with the tempo, meter and key.

        Quantised (``grid.steps_per_quarter`` > 0): notes on the grid, tick 0 at a bar line. Otherwise the
        notes keep their times (tick = seconds at the written tempo). Pitch bends, when kept, are written
        for notes no louder note overlaps (MIDI bends apply to the whole channel), range +-2 semitones.
        A transcription without notes gives a score without notes.
        """
        score = symusic.Score(TICKS_PER_QUARTER)
        score.tempos.append(symusic.Tempo(0, float(self.tempo_bpm)))
        sig = parse_time_signature(self.time_signature)
        score.time_signatures.append(symusic.TimeSignature(0, sig.numerator, sig.denominator))
        if self.key is not None:
            key = parse_key(self.key)
            relative_major = key.tonic if key.mode == "major" else (key.tonic + 3) % 12
            score.key_signatures.append(symusic.KeySignature(0, _SHARPS[relative_major], int(key.mode == "minor")))
        track = symusic.Track("transcription", program=int(program))
        if len(self):
            if self.quantized:
                on, off = quantize_notes(self.notes, self.grid)
            else:
                on, off = np.maximum(self.grid.ticks(self.notes[:, 0]), 0), self.grid.ticks(self.notes[:, 1])
                off = np.maximum(off, on + 1)
            seen: dict[tuple[int, int], int] = {}
            for i, (a, b, pitch, velocity) in enumerate(zip(on.tolist(), off.tolist(), self.notes[:, 2].astype(int).tolist(),
                                                            self.notes[:, 3].astype(int).tolist())):
                if (a, pitch) in seen:  # two notes snapped onto one: keep the longer
                    kept = track.notes[seen[(a, pitch)]]
                    kept.duration = max(kept.duration, b - a)
                    continue
                seen[(a, pitch)] = len(track.notes)
                track.notes.append(symusic.Note(a, b - a, pitch, int(np.clip(velocity, 1, 127))))
            if self.bends:
                self._add_bends(track, on, off)
        score.tracks.append(track)
        return score

    def _add_bends(self, track: symusic.Track, on: np.ndarray, off: np.ndarray) -> None:
        """MIDI bends move the whole channel: a note's bends are written when no louder note overlaps it
        (the loudest of overlapping notes takes the channel; quiet overtone notes do not block it)."""
        taken: list[tuple[int, int]] = []
        for i in np.argsort(-self.notes[:, 3], kind="stable"):
            if any(a < off[i] and on[i] < b for a, b in taken):
                continue
            taken.append((int(on[i]), int(off[i])))
            bend = self.bends[i]
            if bend.size == 0 or not np.any(bend):
                continue
            ticks = np.linspace(on[i], off[i], bend.size, endpoint=False).astype(np.int64)
            values = np.clip(np.round(bend * 8192 / (3 * BEND_RANGE_SEMITONES)), -8192, 8191).astype(int)
            for tick, value in zip(ticks.tolist(), values.tolist()):
                track.pitch_bends.append(symusic.PitchBend(tick, value))
            track.pitch_bends.append(symusic.PitchBend(int(off[i]), 0))
        track.pitch_bends.sort(key=lambda event: event.time)

    def summary(self) -> dict:
        """What a sidecar records: counts, tempo, meter, key, grid, the message and the input's levels."""
        return {"mode": self.mode, "notes": len(self), "duration_s": round(self.duration_s, 3),
                "tempo_bpm": round(self.tempo_bpm, 2), "time_signature": self.time_signature, "key": self.key,
                "quantized": self.quantized, "grid": self.grid.to_dict(), "message": self.message,
                "peak": round(self.peak, 4), "clipped_fraction": round(self.clipped_fraction, 5),
                "pitch_range": [int(self.notes[:, 2].min()), int(self.notes[:, 2].max())] if len(self) else None}


def score_notes(score: symusic.Score, include_drums: bool = False) -> np.ndarray:
    """The notes of a score as ``[N, 4]`` rows ``(onset_s, offset_s, pitch, velocity)``, sorted, in seconds
    (tempo changes followed): the shape ``Transcription.notes`` has, to compare the two."""
    seconds = score.to("second")
    rows = []
    for track in seconds.tracks:
        if track.is_drum and not include_drums:
            continue
        if len(track.notes):
            a = track.notes.numpy()
            rows.append(np.stack([a["time"], a["time"] + a["duration"], a["pitch"], a["velocity"]], axis=1))
    if not rows:
        return np.zeros((0, 4))
    notes = np.concatenate(rows).astype(np.float64)
    return notes[np.lexsort((notes[:, 2], notes[:, 0]))]
