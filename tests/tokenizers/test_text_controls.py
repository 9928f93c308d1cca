"""The free-text parser: what it recognises, contradictions, and text it cannot use."""

from __future__ import annotations

import pytest

from cadenza.errors import InvalidConditioning
from cadenza.tokenizers.text_controls import TextControls, parse_text


@pytest.mark.parametrize("text, expected", [
    ("a jig in G major, 4 bars", TextControls(key="G major", time_signature="6/8", bars=4, style="irish")),
    ("a lively irish reel in D major, 16 bars", TextControls(key="D major", tempo_bpm=132, time_signature="4/4",
                                                             bars=16, style="irish")),
    ("slow waltz in e minor for violin", TextControls(key="E minor", tempo_bpm=66, time_signature="3/4",
                                                      instruments=("violin",))),
    ("a slip jig in A", TextControls(key="A major", time_signature="9/8", style="irish")),
    ("hymn in 3/4 time, 90 bpm, 8 measures", TextControls(tempo_bpm=90, time_signature="3/4", bars=8, style="chorale")),
    ("very fast march on flute and tin whistle", TextControls(tempo_bpm=168, time_signature="2/4",
                                                            instruments=("flute", "tin whistle"))),
    ("Bb major chorale", TextControls(key="Bb major", style="chorale")),
])
def test_parse_text(text, expected):
    assert parse_text(text) == expected


@pytest.mark.parametrize("text, field", [
    ("in D major or maybe A minor", "key"),
    ("first 3/4, then 6/8", "meter"),
    ("8 bars, no, 16 bars", "bar count"),
    ("a scottish chorale", "style"),
    ("120 bpm then 140 bpm", "tempo"),
])
def test_contradictions_raise(text, field):
    with pytest.raises(InvalidConditioning, match=f"more than one {field}"):
        parse_text(text)


def test_text_with_nothing_recognised_raises():
    with pytest.raises(InvalidConditioning, match="nothing in the text"):
        parse_text("something nice please")


def test_explicit_meter_wins_over_a_form():
    # A form only implies a meter; a written one is taken as the musician's choice.
    assert parse_text("a jig in 12/8").time_signature == "12/8"


def test_bpm_wins_over_tempo_word():
    assert parse_text("a slow air at 70 bpm").tempo_bpm == 70


@pytest.mark.parametrize("text", ["a reel in 3/4", "a waltz in 6/8", "a slip jig in 6/8", "a polka in 3/4 time"])
def test_a_dance_in_a_meter_it_is_never_in_is_refused(text):
    with pytest.raises(InvalidConditioning, match="is in"):
        parse_text(text)


@pytest.mark.parametrize("text, form", [("a two-part reel", "two-part"), ("an AABA tune in G", "AABA"),
                                        ("a jig, A8 B8", "A8 B8"), ("AA'BB' hornpipe", "AA'BB'"),
                                        ("verse chorus song in C major", "verse chorus")])
def test_form_is_read_from_text(text, form):
    assert parse_text(text).form == form


def test_a_capital_letter_alone_is_not_a_form():
    assert parse_text("A jig in D").form is None and parse_text("a hornpipe in C. A B").form is None


def test_triplets_and_swing_are_read():
    assert parse_text("a reel with triplets").triplets and parse_text("a swing tune").triplets
    assert not parse_text("a reel in D").triplets
