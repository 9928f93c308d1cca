"""Load MIDI files with symusic, turning every way a file can be unusable into ``CorruptMidi``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import symusic

from cadenza.errors import CorruptMidi, InputNotFound

# Standard MIDI files start with the MThd chunk. Checking it first gives a clearer message than the
# parser's for the common mistakes (a WAV or a text file named .mid).
_MIDI_MAGIC = b"MThd"


def load_midi(path: str | os.PathLike) -> symusic.Score:
    """Read a Standard MIDI File into a tick-based ``symusic.Score``.

    Raises:
        InputNotFound: the file does not exist (a ``CorruptInput``).
        CorruptMidi: the file is empty, is not MIDI (no ``MThd`` header), cannot be parsed, or
            has no notes (nothing to play).
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"MIDI file not found: {p}")
    with p.open("rb") as f:
        head = f.read(4)
    if not head:
        raise CorruptMidi(f"MIDI file is empty (0 bytes): {p}")
    if head != _MIDI_MAGIC:
        raise CorruptMidi(f"not a MIDI file (no 'MThd' header, starts with {head!r}): {p}")
    try:
        score = symusic.Score(p)
    except (RuntimeError, ValueError) as e:  # symusic reports parse errors as RuntimeError
        raise CorruptMidi(f"cannot parse MIDI file {p}: {e}") from e
    if score.ticks_per_quarter <= 0:  # division 0: no time in the file can be converted to seconds
        raise CorruptMidi(f"MIDI file declares {score.ticks_per_quarter} ticks per quarter note (its header's "
                          f"division), so none of its times can be read: {p}")
    if score.note_num() == 0:
        raise CorruptMidi(f"MIDI file has no notes, nothing to play: {p}")
    return score


def midi_duration_s(score: symusic.Score) -> float:
    """Seconds from time 0 to the end of the last note, following the tempo map.

    A file without tempo events plays at 120 BPM (symusic's default, as the MIDI standard says).
    Returns 0.0 for a score without notes.
    """
    seconds = to_seconds(score)
    ends = []
    for track in seconds.tracks:
        if len(track.notes):
            notes = track.notes.numpy()
            ends.append(float((notes["time"] + notes["duration"]).max()))
    return max(ends, default=0.0)


def to_seconds(score: symusic.Score) -> symusic.Score:
    """The score with every time in seconds (tempo map applied); returned as is if already so."""
    return score if score.ttype == symusic.TimeUnit.second else score.to("second")


def time_signature_at(score: symusic.Score, tick: int) -> tuple[int, int]:
    """``(numerator, denominator)`` in force at ``tick`` (4/4 for a score without time signatures)."""
    sigs = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures) or [(0, 4, 4)]
    _, num, den = next((s for s in reversed(sigs) if s[0] <= tick), sigs[0])
    return num, den


def bar_line_ticks(score: symusic.Score) -> Iterator[int]:
    """The tick of every bar line of a tick-based ``score`` from 0 on, following its time-signature
    changes (an endless stream: the caller takes what it needs)."""
    tick = 0
    while True:
        yield tick
        num, den = time_signature_at(score, tick)
        tick += max(1, int(round(num * 4 / den * score.ticks_per_quarter)))
