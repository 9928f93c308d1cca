"""Key parsing and Krumhansl-Schmuckler key finding; time signatures."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.errors import InvalidConditioning
from cadenza.music.instruments import program_of
from cadenza.music.theory import (ALL_KEYS, Key, estimate_key, key_correlations, parse_key, parse_time_signature,
                                  pitch_class_histogram)


def scale_histogram(key: Key, tonic_triad_weight: float = 3.0) -> np.ndarray:
    hist = np.zeros(12)
    for pc in key.scale_pitch_classes():
        hist[pc] += 1.0
    for step in (0, 4 if key.mode == "major" else 3, 7):
        hist[(key.tonic + step) % 12] += tonic_triad_weight
    return hist


def test_d_major_scale_is_d_major():
    assert estimate_key(scale_histogram(Key(2, "major"))).name == "D major"


def test_a_harmonic_minor_is_a_minor():
    hist = np.zeros(12)
    for pc in (9, 11, 0, 2, 4, 5, 8):  # A B C D E F G#
        hist[pc] = 1.0
    for pc in (9, 0, 4):  # tonic triad
        hist[pc] += 3.0
    assert estimate_key(hist).name == "A minor"


@pytest.mark.parametrize("key", ALL_KEYS, ids=str)
def test_every_key_is_found_from_its_weighted_scale(key):
    assert estimate_key(scale_histogram(key)) == key


def test_correlations_shape_and_flat_histogram():
    assert key_correlations(np.ones(12)).shape == (24,)
    assert not key_correlations(np.ones(12)).any()  # no information: all zero, no NaN
    with pytest.raises(ValueError):
        key_correlations(np.ones(11))


def test_pitch_class_histogram_weights_by_duration():
    hist = pitch_class_histogram(np.array([60, 72, 62]), np.array([1.0, 0.5, 2.0]))
    expected = np.zeros(12)
    expected[0], expected[2] = 1.5, 2.0
    np.testing.assert_allclose(hist, expected)


def test_key_properties():
    key = parse_key("F# minor")
    assert (key.tonic, key.mode, key.index, str(key)) == (6, "minor", 18, "F# minor")
    assert key.transpose(-7).name == "B minor"
    assert parse_key("C").scale_pitch_classes() == (0, 2, 4, 5, 7, 9, 11)
    assert parse_key("B♭ major").name == "Bb major"
    with pytest.raises(InvalidConditioning):
        parse_key(3)


@pytest.mark.parametrize("text, num, den, quarters", [("4/4", 4, 4, 4.0), ("6/8", 6, 8, 3.0), ("3/2", 3, 2, 6.0),
                                                      ("9/8", 9, 8, 4.5), ("2/4", 2, 4, 2.0)])
def test_parse_time_signature(text, num, den, quarters):
    ts = parse_time_signature(text)
    assert (ts.numerator, ts.denominator, ts.quarters_per_bar, ts.name) == (num, den, quarters, text)


@pytest.mark.parametrize("text", ["3/5", "x", "4/4/4", "0/4", "40/4", "", "4/64"])
def test_parse_time_signature_rejects(text):
    with pytest.raises(InvalidConditioning):
        parse_time_signature(text)


def test_program_of():
    assert program_of("Violin") == 40 and program_of(" tin whistle ") == 78 and program_of("program:127") == 127
    for bad in ("kazoo", "program:128", "program:x"):
        with pytest.raises(InvalidConditioning):
            program_of(bad)


def test_score_histogram_weights_by_duration_and_skips_drums():
    import numpy as np
    import symusic

    from cadenza.music.theory import score_pitch_class_histogram

    score = symusic.Score(480)
    melody, drums = symusic.Track(program=0), symusic.Track(is_drum=True)
    melody.notes.append(symusic.Note(0, 960, 62, 80))   # D, two beats
    melody.notes.append(symusic.Note(960, 480, 69, 80))  # A, one beat
    drums.notes.append(symusic.Note(0, 480, 36, 80))     # kick (C) is not a pitch
    score.tracks.append(melody)
    score.tracks.append(drums)
    hist = score_pitch_class_histogram(score)
    assert hist[2] == 960 and hist[9] == 480 and hist[0] == 0
    assert np.array_equal(score_pitch_class_histogram(symusic.Score(480)), np.zeros(12))
