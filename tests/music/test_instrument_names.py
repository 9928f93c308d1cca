"""Which General MIDI instrument a description names (the sketch a score is performed from uses it)."""

from __future__ import annotations

import pytest

from cadenza.music.instruments import GM_PROGRAMS, named_instrument


@pytest.mark.parametrize("text,name", [
    ("a reel played by a solo tin whistle in D major", "tin whistle"),  # the longer name wins over "whistle"
    ("A jig on the Flute, E minor", "flute"),
    ("pan flute and harp", "pan flute"),
    ("an air for violin and piano", "violin"),  # the earlier of two names of one length
    ("a march played by a solo cello in G minor at 90 BPM", "cello"),
    ("an alto sax solo", "alto sax"),
    ("Fiddle tune", "fiddle"),
])
def test_the_named_instrument_is_found(text, name):
    assert named_instrument(text) == name and name in GM_PROGRAMS


@pytest.mark.parametrize("text", [None, "", "a calm tune in C major", "violinist's bow", "pianos"])
def test_no_instrument_named_is_none(text):
    assert named_instrument(text) is None
