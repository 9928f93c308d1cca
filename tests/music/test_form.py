"""Form plans: parsing, sizes, the style's usual form, and the measures that check a piece against a plan."""

from __future__ import annotations

import pytest
import symusic

from cadenza.errors import InvalidConditioning
from cadenza.music.form import form_exact, onset_stats, parse_form, repeated_bar_rate, style_form


@pytest.mark.parametrize("text, bars, expected", [
    ("AABB", 32, "A8 A8 B8 B8"), ("AABA", 16, "A4 A4 B4 A4"), ("A8 B8", None, "A8 B8"),
    ("A A' B B'", 16, "A4 A'4 B4 B'4"), ("AA'BB'", None, "A8 A'8 B8 B'8"), ("A4A4B8", None, "A4 A4 B8"),
    ("two-part", 16, "A4 A4 B4 B4"), ("verse chorus", 8, "A2 B2 A2 B2"), ("a6 b", 10, "A6 B4"),
    ("ABAC", 12, "A3 B3 A3 C3")])
def test_parse_form(text, bars, expected):
    plan = parse_form(text, bars)
    assert plan.text == expected and parse_form(plan.text).text == expected
    if bars is not None:
        assert plan.bars == bars


@pytest.mark.parametrize("text, bars, match", [
    ("AABB", 10, "cannot fill"), ("A8 B8", 12, "adds up to 16"), ("A8 A4", None, "two lengths"),
    ("A' A", 8, "before any"), ("hello world", None, "write letters"), ("", None, "write letters"),
    ("A1 A'1", None, "2\\+ bars"), ("AB" * 9, None, "at most")])
def test_bad_plans_are_refused(text, bars, match):
    with pytest.raises(InvalidConditioning, match=match):
        parse_form(text, bars)


def test_repeats_and_second_endings():
    plan = parse_form("A A' B B'", 16)
    sources = plan.source_of_bars()
    assert sources[:4] == [None] * 4 and sources[4:7] == [0, 1, 2] and sources[7] is None
    assert sources[8:12] == [None] * 4 and sources[12:15] == [8, 9, 10] and sources[15] is None


def test_style_forms():
    assert style_form("irish", 16).text == "A4 A'4 B4 B'4"
    assert style_form("scottish", 32).text == "A8 A'8 B8 B'8"
    assert style_form("folk-song", 8).text == "A4 A'4"
    assert style_form("irish", 7) is None and style_form("chorale", 16) is None and style_form(None, 16) is None


def tune(bars: list[list[tuple[float, int]]], tpq: int = 4) -> symusic.Score:
    """A 2/4 score from per-bar (beat, pitch) lists; each note lasts a quarter."""
    score = symusic.Score(tpq)
    score.time_signatures.append(symusic.TimeSignature(0, 2, 4))
    track = symusic.Track()
    for b, notes in enumerate(bars):
        for beat, pitch in notes:
            track.notes.append(symusic.Note(int((2 * b + beat) * tpq), tpq, pitch, 80))
    score.tracks.append(track)
    return score


def test_repeated_bar_rate_and_form_exact():
    a, b, c, d = [(0, 60), (1, 62)], [(0, 64), (1, 65)], [(0, 67)], [(0, 69), (1, 67)]
    score = tune([a, b, a, c])
    assert repeated_bar_rate(score) == 0.25
    assert form_exact(score, parse_form("A A'", 4))  # bar 3 repeats bar 1, the last bar differs
    assert not form_exact(tune([a, b, a, b]), parse_form("A A'", 4))  # the second ending must differ
    assert not form_exact(tune([a, b, d, c]), parse_form("A A'", 4))  # bar 3 is not bar 1
    assert form_exact(tune([a, b, a, b, c, d]), parse_form("A2 A2 B2", 6))
    assert repeated_bar_rate(tune([a, [], a])) == 0.5  # empty bars are not counted


def test_onset_stats():
    score = tune([[(0, 60), (0, 64), (1, 62)]])  # a two-note onset, then a note
    overlap, same = onset_stats(score)
    assert same == pytest.approx(2 / 3) and overlap == 0.0
    score.tracks[0].notes[0].duration = 8  # the first note now rings past the next onset
    assert onset_stats(score)[0] == pytest.approx(1 / 3)
