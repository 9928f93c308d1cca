"""Key and tempo from audio (librosa: chroma, beat tracker) and from notes."""

from __future__ import annotations

import numpy as np

from cadenza.analysis import estimate_key_from_audio, estimate_tempo, key_from_notes
from cadenza.analysis.key_tempo import tempo_from_notes, without_overtone_ghosts

from made_audio import SR, tones


def _scale_tune(tonic: int, minor: bool = False) -> list[tuple[float, float, int]]:
    steps = [0, 2, 3, 5, 7, 8, 11, 12] if minor else [0, 2, 4, 5, 7, 9, 11, 12]
    line = steps + steps[::-1] + [0, 4 - minor, 7, 12, 7, 4 - minor, 0]
    return [(0.3 * i, 0.28, tonic + s) for i, s in enumerate(line)]


def test_key_from_audio_and_from_notes():
    audio = tones(_scale_tune(62), 7.5)
    assert estimate_key_from_audio(audio, SR).name == "D major"
    assert estimate_key_from_audio(np.zeros(SR, np.float32), SR) is None
    notes = np.array([[on, on + d, p, 90] for on, d, p in _scale_tune(57, minor=True)])
    assert key_from_notes(notes).name == "A minor"
    assert key_from_notes(np.zeros((0, 4))) is None


def test_overtones_heard_as_notes_do_not_pull_the_key_to_the_dominant():
    """A transcriber hears a note's third partial (a twelfth up: the fifth) as a quieter note of its own;
    counted, those push a C major tune to G major. They are set aside, real notes are kept."""
    line = [60, 64, 67, 65, 64, 62, 60, 67, 69, 67, 65, 64, 62, 60]
    tune = np.array([[0.3 * i, 0.3 * i + 0.28, p, 90] for i, p in enumerate(line)])
    ghosts = np.array([[0.3 * i + 0.01, 0.3 * i + 0.28, p + 19, 60] for i, p in enumerate(line)])
    heard = np.concatenate([tune, ghosts])
    assert without_overtone_ghosts(heard).tolist() == tune.tolist()
    assert key_from_notes(heard).name == "C major"
    # a real note a twelfth above, as loud and on its own onset, is not an overtone
    duet = np.array([[0.0, 1.0, 48, 90], [0.3, 1.0, 67, 90]])
    assert without_overtone_ghosts(duet).shape[0] == 2


def test_tempo_from_audio_and_from_notes():
    beat = 60 / 100
    clicks = [(i * beat, 0.1, 72 if i % 4 == 0 else 67) for i in range(16)]
    assert abs(estimate_tempo(tones(clicks, 16 * beat + 0.5), SR) - 100) < 4
    assert estimate_tempo(np.zeros(3 * SR, np.float32), SR) == 0.0
    notes = np.array([[on, on + d, p, 90] for on, d, p in clicks])
    assert abs(tempo_from_notes(notes, 10.0) - 100) < 2
    assert tempo_from_notes(notes[:3], 10.0) == 0.0
