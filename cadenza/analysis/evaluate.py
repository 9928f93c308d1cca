"""Note-level scores of a transcription against a reference (mir_eval's ``transcription`` metrics): the
ear's half of comparing generated audio with the score it was meant to play."""

from __future__ import annotations

import numpy as np

from cadenza.errors import MissingDependency


def note_f1(reference: np.ndarray, estimate: np.ndarray, onset_tolerance_s: float = 0.05,
            offsets: bool = False, offset_ratio: float = 0.2, pitch_tolerance_cents: float = 50.0) -> dict:
    """Precision, recall and F1 of ``estimate`` against ``reference``, both ``[N, 4]`` rows ``(onset_s,
    offset_s, midi_pitch, velocity)`` (``Transcription.notes``, ``transcription.score_notes(score)``).

    A note matches when its pitch is within ``pitch_tolerance_cents`` and its onset within
    ``onset_tolerance_s``; with ``offsets`` its offset must also be within ``offset_ratio`` of the
    reference note's length (at least 50 ms), as in MIREX. Returns ``{"precision", "recall", "f1",
    "reference_notes", "estimated_notes"}``; an empty reference or estimate scores 0 (1 when both are empty).
    """
    try:
        from mir_eval.transcription import precision_recall_f1_overlap
    except ImportError:
        raise MissingDependency("note F1 needs mir_eval: pip install 'cadenza[transcribe]'") from None
    ref, est = _clean(reference), _clean(estimate)
    counts = {"reference_notes": int(ref.shape[0]), "estimated_notes": int(est.shape[0])}
    if ref.shape[0] == 0 or est.shape[0] == 0:
        value = 1.0 if ref.shape[0] == est.shape[0] else 0.0
        return {"precision": value, "recall": value, "f1": value, **counts}
    precision, recall, f1, _ = precision_recall_f1_overlap(
        ref[:, :2], _hz(ref[:, 2]), est[:, :2], _hz(est[:, 2]), onset_tolerance=onset_tolerance_s,
        pitch_tolerance=pitch_tolerance_cents, offset_ratio=offset_ratio if offsets else None)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), **counts}


def _clean(notes: np.ndarray) -> np.ndarray:
    """Rows with a positive length (mir_eval refuses zero-length intervals)."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    return notes[notes[:, 1] > notes[:, 0]]


def _hz(pitch: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
