"""load_midi turns every unusable file into CorruptInput; midi_duration_s follows the tempo map."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symusic import Tempo

from cadenza.errors import CadenzaError, CorruptInput
from cadenza.fileio.midi import load_midi, midi_duration_s


def test_loads_notes(midi_file):
    score = load_midi(midi_file(notes=[(0, 480, 60, 100), (480, 480, 64, 90)]))
    assert score.note_num() == 2


def test_no_tempo_is_120_bpm(midi_file):
    # 4 quarter notes at 480 ticks each, no tempo event: 4 beats at 120 BPM = 2.0 s.
    score = load_midi(midi_file(notes=[(480 * i, 480, 60, 100) for i in range(4)]))
    assert len(score.tempos) == 0
    assert midi_duration_s(score) == pytest.approx(2.0, abs=1e-4)


def test_duration_follows_tempo(midi_file, score_of):
    assert midi_duration_s(load_midi(midi_file(notes=[(0, 960, 60, 100)], qpm=60))) == pytest.approx(2.0, abs=1e-4)
    score = score_of(notes=[(0, 480, 60, 100), (960, 480, 62, 100)], qpm=60)
    score.tempos.append(Tempo(480, qpm=240))  # beat 1 at 60 BPM (1 s), then 240 BPM (0.25 s a beat)
    assert midi_duration_s(score) == pytest.approx(1.0 + 0.25 + 0.25, abs=1e-4)


def test_missing_file_is_corrupt_input_and_file_not_found(tmp_path):
    with pytest.raises(CorruptInput, match="not found") as info:
        load_midi(tmp_path / "nope.mid")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a MIDI file"),
        (b"hello, I am a text file", "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00\x00\x90", "cannot parse"),
        (b"MThd\x00\x00", "cannot parse"),
    ],
    ids=["empty", "wav", "text", "truncated-track", "truncated-header"],
)
def test_unusable_bytes_raise_corrupt_input(tmp_path, content, message):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(CorruptInput, match=message):
        load_midi(path)


def test_zero_notes_is_corrupt_input(midi_file):
    with pytest.raises(CorruptInput, match="no notes"):
        load_midi(midi_file(notes=[], qpm=100))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200))
def test_random_bytes_after_header_never_escape_as_other_errors(tmp_path, body):
    path = tmp_path / "fuzz.mid"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0" + body)
    try:
        score = load_midi(path)
    except CadenzaError as e:
        assert isinstance(e, CorruptInput)
    else:
        assert score.note_num() > 0
