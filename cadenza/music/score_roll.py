"""The score as the audio models see it: a frame-aligned piano roll with onsets.

The codec LM and the latent diffusion model perform a score by reading, at each codec frame (50 Hz), which
pitches sound and which start there. Every training clip was rendered from a known MIDI excerpt, so the
roll of its notes is exact; at generation time it comes from a user's MIDI file (``--melody``) or from the
symbolic composer.

Layout of one frame (``SCORE_DIM = 2 * PITCHES + 1`` features, float32 in {0, 1}):

- ``[0, PITCHES)``: pitch ``LOW + i`` sounds during the frame (onset frame included, offset frame not);
- ``[PITCHES, 2 * PITCHES)``: pitch ``LOW + i`` starts in this frame;
- ``[-1]``: 1 when a score is given at all. A silent bar of a given score (rests) has it set, while "no
  score" (condition dropout, the text-only path) is the all-zero vector, so the two never look alike.

Pitches outside ``LOW..HIGH`` (the piano's range) are folded in by octaves.
"""

from __future__ import annotations

import numpy as np

LOW, HIGH = 21, 108
#: Seconds a performance lasts after its score's last note: the release and the room.
SCORE_TAIL_S = 0.5
PITCHES = HIGH - LOW + 1
SCORE_DIM = 2 * PITCHES + 1


def fold_pitch(pitch: int) -> int:
    """``pitch`` moved by octaves into ``LOW..HIGH``."""
    while pitch < LOW:
        pitch += 12
    while pitch > HIGH:
        pitch -= 12
    return pitch


def score_roll(notes: np.ndarray, frames: int, frame_rate: float) -> np.ndarray:
    """``notes [N, >=3]`` rows ``(onset_s, offset_s, pitch, ...)`` -> ``roll [frames, SCORE_DIM]`` float32.

    A note sounds from the frame holding its onset up to (not including) the frame holding its offset,
    and at least one frame. Notes starting at or after ``frames / frame_rate`` are left out.
    """
    if frames < 0:
        raise ValueError(f"frames must be >= 0, got {frames}")
    roll = np.zeros((frames, SCORE_DIM), dtype=np.float32)
    roll[:, -1] = 1.0
    notes = np.asarray(notes, dtype=np.float64)
    notes = notes.reshape(0, 3) if notes.size == 0 else notes.reshape(len(notes), -1)
    for onset, offset, pitch in notes[:, :3]:
        if not (np.isfinite(onset) and np.isfinite(offset)):
            continue
        start = max(0, int(np.floor(onset * frame_rate + 1e-6)))
        if start >= frames:
            continue
        end = min(frames, max(start + 1, int(np.floor(offset * frame_rate + 1e-6))))
        index = fold_pitch(int(round(pitch))) - LOW
        roll[start:end, index] = 1.0
        roll[start, PITCHES + index] = 1.0
    return roll


def roll_notes(roll: np.ndarray, frame_rate: float) -> np.ndarray:
    """The inverse of `score_roll` up to frame resolution: ``[N, 3]`` rows ``(onset_s, offset_s, pitch)``."""
    rows = []
    for index in range(PITCHES):
        active, onsets = roll[:, index] > 0.5, roll[:, PITCHES + index] > 0.5
        frame = 0
        while frame < len(roll):
            if active[frame] and (onsets[frame] or frame == 0 or not active[frame - 1]):
                end = frame + 1
                while end < len(roll) and active[end] and not onsets[end]:
                    end += 1
                rows.append((frame / frame_rate, end / frame_rate, LOW + index))
                frame = end
            else:
                frame += 1
    return np.array(sorted(rows), dtype=np.float64).reshape(-1, 3)


def empty_roll(frames: int) -> np.ndarray:
    """``[frames, SCORE_DIM]`` zeros: no score (the text-only condition)."""
    return np.zeros((frames, SCORE_DIM), dtype=np.float32)


def score_notes(score) -> np.ndarray:
    """``[N, 3]`` rows ``(onset_s, offset_s, pitch)`` of every non-drum note of a symusic score."""
    from cadenza.fileio.midi import to_seconds

    seconds = to_seconds(score)
    rows = [(n.time, n.time + n.duration, n.pitch) for t in seconds.tracks if not t.is_drum for n in t.notes]
    return np.array(sorted(rows), dtype=np.float64).reshape(-1, 3)


def crop_roll(notes: np.ndarray, start_s: float, frames: int, frame_rate: float) -> np.ndarray:
    """`score_roll` of the ``frames`` frames from ``start_s`` on: ``notes [N, >=3]`` moved by ``-start_s``,
    notes that end before it left out and notes that started before it held from frame 0."""
    notes = np.asarray(notes, dtype=np.float64).reshape(len(notes), -1)[:, :3].copy()
    notes[:, :2] -= start_s
    notes = notes[notes[:, 1] > 0]
    notes[:, 0] = np.maximum(notes[:, 0], 0.0)
    return score_roll(notes, frames, frame_rate)


def melody_notes(path) -> np.ndarray:
    """``[N, 3]`` notes of the MIDI melody file at ``path`` (`score_notes`). Raises InvalidConditioning when
    it has no pitched notes (CorruptMidi when it is not MIDI)."""
    from cadenza.errors import InvalidConditioning
    from cadenza.fileio.midi import load_midi

    notes = score_notes(load_midi(path))
    if len(notes) == 0:
        raise InvalidConditioning(f"melody {path}: no pitched notes to perform")
    return notes
