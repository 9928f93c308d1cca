"""The frame-aligned score the audio models read."""

from __future__ import annotations

import numpy as np

from cadenza.music.score_roll import LOW, PITCHES, SCORE_DIM, empty_roll, fold_pitch, roll_notes, score_roll, score_notes


def test_notes_round_trip_at_frame_resolution():
    notes = np.array([[0.0, 0.5, 60], [0.5, 1.0, 64], [0.5, 1.0, 67], [1.0, 1.02, 72]])
    roll = score_roll(notes, 60, 50.0)
    assert roll.shape == (60, SCORE_DIM) and roll.dtype == np.float32
    assert np.array_equal(roll_notes(roll, 50.0), np.array([[0.0, 0.5, 60], [0.5, 1.0, 64], [0.5, 1.0, 67],
                                                            [1.0, 1.02, 72]]))
    assert roll[:, -1].all()  # a given score is marked present in every frame, rests included


def test_repeated_notes_keep_their_onsets_and_short_notes_one_frame():
    notes = np.array([[0.0, 0.2, 62], [0.2, 0.4, 62], [0.5, 0.501, 62]])
    roll = score_roll(notes, 30, 50.0)
    index = 62 - LOW
    assert roll[:, PITCHES + index].nonzero()[0].tolist() == [0, 10, 25]
    assert roll[25, index] == 1 and roll[26, index] == 0
    assert len(roll_notes(roll, 50.0)) == 3


def test_out_of_range_pitches_fold_and_late_notes_are_left_out():
    assert fold_pitch(10) == 22 and fold_pitch(120) == 108 and fold_pitch(60) == 60
    roll = score_roll(np.array([[0.0, 0.1, 10], [2.0, 3.0, 60]]), 50, 50.0)
    assert roll[0, 22 - LOW] == 1
    assert roll[:, :PITCHES].sum() == 5  # the note at 2 s starts after the 1 s roll ends


def test_no_notes_and_no_score_differ():
    assert score_roll(np.zeros((0, 3)), 4, 50.0)[:, -1].all()
    assert not empty_roll(4).any()


def test_score_notes_reads_seconds_through_the_tempo(score_of):
    score = score_of([(0, 480, 60, 90), (480, 480, 62, 90)], qpm=60)
    assert np.allclose(score_notes(score), [[0.0, 1.0, 60], [1.0, 2.0, 62]])


def test_a_crop_moves_notes_and_holds_the_ones_already_sounding():
    from cadenza.music.score_roll import crop_roll

    notes = np.array([[0.0, 0.5, 60], [0.2, 1.0, 64], [1.0, 1.2, 67]])
    roll = crop_roll(notes, 0.6, 50, 50.0)
    assert np.array_equal(roll_notes(roll, 50.0), [[0.0, 0.4, 64], [0.4, 0.6, 67]])
    assert roll[0, PITCHES + 64 - LOW] == 1  # a held note reads as starting at the crop (as training crops did)
