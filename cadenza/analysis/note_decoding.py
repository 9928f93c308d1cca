"""Basic Pitch's note and onset probabilities -> notes, as Basic Pitch decodes them (its
``output_to_notes_polyphonic`` and ``get_pitch_bends``, Apache-2.0, rewritten here on plain numpy so that
its TensorFlow-era dependencies are not needed, and with notes already found passed in so that a long
input can be decoded chunk by chunk).

1. Onsets: the model's onset probabilities, raised where the note probability jumps (inferred onsets);
   every local maximum in time above ``onset_threshold`` starts a note.
2. From the latest onset backwards in time, each note runs on while the note probability at its pitch
   stays above ``frame_threshold`` (gaps of up to 11 frames are bridged); that energy (and the
   neighbouring semitones') is then used up, so one sound makes one note.
3. The "melodia trick": while any unused note probability is above the threshold, the strongest
   starts a note found by walking forward and backward from it.
Notes of ``min_frames`` frames or fewer are dropped. A note's amplitude (0-1) is its mean note probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cadenza.analysis.basic_pitch import CONTOUR_BINS_PER_SEMITONE, MIDI_OFFSET, N_PITCHES, Activations

ENERGY_TOL = 11  # frames below the threshold that end a note
BEND_TOLERANCE_BINS = 25  # contour bins (1/3 semitone) searched around a note's pitch for its bend


def decode_notes(act: Activations, onset_threshold: float, frame_threshold: float, min_frames: int,
                 pitch_range: tuple[int, int], claimed: Sequence[tuple[int, int, int]] = (),
                 infer_onsets: bool = True, melodia: bool = True) -> list[tuple[int, int, int, float]]:
    """Notes in ``act`` as ``(start_frame, end_frame, midi_pitch, amplitude)``, end exclusive.

    ``pitch_range``: MIDI pitches kept (inclusive). ``claimed``: ``(start_frame, end_frame, midi_pitch)`` of
    notes already decoded (from the chunk before) whose sound must not start a note again.
    """
    frames = act.note.astype(np.float64)
    onsets = act.onset.astype(np.float64)
    n = frames.shape[0]
    if n < 3:
        return []
    low, high = (max(0, p - MIDI_OFFSET) for p in pitch_range)
    outside = np.ones(N_PITCHES, dtype=bool)
    outside[low:min(high, N_PITCHES - 1) + 1] = False
    if pitch_range[1] < MIDI_OFFSET:
        outside[:] = True
    frames[:, outside] = 0.0
    onsets[:, outside] = 0.0
    if infer_onsets:
        onsets = _with_inferred_onsets(onsets, frames)

    peaks = np.zeros_like(onsets, dtype=bool)
    peaks[1:-1] = (onsets[1:-1] > onsets[:-2]) & (onsets[1:-1] > onsets[2:])
    onset_t, onset_p = np.nonzero(peaks & (onsets >= onset_threshold))

    remaining = np.ascontiguousarray(frames.T)  # [88, F]: one pitch's frames are contiguous
    for start, end, pitch in claimed:
        row = pitch - MIDI_OFFSET
        if 0 <= row < N_PITCHES and end > 0:
            remaining[max(0, row - 1):row + 2, max(0, start):end] = 0.0

    notes: list[tuple[int, int, int, float]] = []
    for start, row in zip(onset_t[::-1].tolist(), onset_p[::-1].tolist()):  # latest first
        if start >= n - 1:
            continue
        end = _run_end(remaining[row], start + 1, n - 1, frame_threshold, +1)
        if end - start <= min_frames:
            continue
        remaining[max(0, row - 1):row + 2, start:end] = 0.0
        notes.append((start, end, row + MIDI_OFFSET, float(frames[start:end, row].mean())))

    if melodia:
        while True:
            flat = int(np.argmax(remaining))
            row, middle = divmod(flat, n)
            if remaining[row, middle] <= frame_threshold:
                break
            remaining[row, middle] = 0.0
            end = _run_end(remaining[row], middle + 1, n - 1, frame_threshold, +1, clear=remaining, row=row)
            start = _run_end(remaining[row], middle - 1, 0, frame_threshold, -1, clear=remaining, row=row) + 1
            if end - start <= min_frames:
                continue
            notes.append((start, end, row + MIDI_OFFSET, float(frames[start:end, row].mean())))
    return notes


def _run_end(energy: np.ndarray, i: int, stop: int, threshold: float, step: int,
             clear: np.ndarray | None = None, row: int = 0) -> int:
    """Walk from frame ``i`` towards ``stop`` (exclusive) by ``step`` until ``ENERGY_TOL`` frames in a row
    are below ``threshold``; return the frame after the last one above it (walking forward) or the last
    one above it minus 1 (walking backward). With ``clear``, every frame walked over is used up there
    (with its neighbouring semitones), as the melodia trick does."""
    k = 0
    while (i < stop if step > 0 else i > stop) and k < ENERGY_TOL:
        k = k + 1 if energy[i] < threshold else 0
        if clear is not None:
            clear[max(0, row - 1):row + 2, i] = 0.0
        i += step
    return i - k if step > 0 else i + k


def _with_inferred_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """Onset probabilities raised where the note probability jumps up (a re-struck note the onset head
    missed): the smallest rise over 1..``n_diff`` frames, scaled to the onsets' maximum."""
    diffs = [frames - np.concatenate([np.zeros((k, frames.shape[1])), frames[:-k]]) for k in range(1, n_diff + 1)]
    rise = np.maximum(np.min(diffs, axis=0), 0.0)
    rise[:n_diff] = 0.0
    top = rise.max()
    if top <= 0.0:
        return onsets
    return np.maximum(onsets, onsets.max() * rise / top)


def pitch_bends(contour: np.ndarray, notes: Sequence[tuple[int, int, int, float]]) -> list[np.ndarray]:
    """Each note's bend per frame, in 1/3 semitones from its pitch (``[end - start]`` int arrays): the
    strongest contour bin near the note's pitch, weighted by a Gaussian (std 5 bins) around it."""
    tol = BEND_TOLERANCE_BINS
    bins = contour.shape[1]
    weights = np.exp(-0.5 * (np.arange(-tol, tol + 1) / 5.0) ** 2)
    out = []
    for start, end, pitch, _ in notes:
        centre = CONTOUR_BINS_PER_SEMITONE * (pitch - MIDI_OFFSET)
        lo, hi = max(0, centre - tol), min(bins, centre + tol + 1)
        window = contour[start:end, lo:hi] * weights[lo - (centre - tol):hi - (centre - tol)]
        out.append((np.argmax(window, axis=1) + lo - centre).astype(np.int64) if end > start
                   else np.zeros(0, np.int64))
    return out
