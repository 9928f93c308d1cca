"""Conditioning and Sampling: validation at construction, capabilities, refusal of unsupported fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile

from cadenza.conditioning import Capability, Conditioning, Sampling, require_supported
from cadenza.errors import CorruptInput, InvalidConditioning, UnsupportedConditioning


@pytest.mark.parametrize("text, expected", [
    ("D major", "D major"), ("F# minor", "F# minor"), ("Bb", "Bb major"), ("ebm", "Eb minor"),
    ("  c#min ", "C# minor"), ("A", "A major"), ("Gb major", "F# major"),
])
def test_keys_are_accepted_and_normalised(text, expected):
    assert Conditioning(key=text).key == expected


@pytest.mark.parametrize("text", ["H major", "D dorian", "", "major", "C###"])
def test_unknown_keys_raise(text):
    with pytest.raises(InvalidConditioning):
        Conditioning(key=text)


@pytest.mark.parametrize("tempo", [20, 20.0, 120, 299.5, 300])
def test_tempo_inside_bounds(tempo):
    assert Conditioning(tempo_bpm=tempo).tempo_bpm == tempo


@pytest.mark.parametrize("tempo", [19.99, 300.01, 900, 0, -120, math.nan, math.inf, "120"])
def test_tempo_outside_bounds_raises(tempo):
    with pytest.raises(InvalidConditioning, match="tempo"):
        Conditioning(tempo_bpm=tempo)


@pytest.mark.parametrize("text, expected", [("6/8", "6/8"), (" 3 / 4 ", "3/4"), ("12/8", "12/8"), ("2/2", "2/2")])
def test_time_signatures_accepted(text, expected):
    assert Conditioning(time_signature=text).time_signature == expected


@pytest.mark.parametrize("text", ["3/5", "x", "4", "0/4", "33/4", "4/0", "6/12"])
def test_bad_time_signatures_raise(text):
    with pytest.raises(InvalidConditioning):
        Conditioning(time_signature=text)


@pytest.mark.parametrize("bars", [1, 16, 256])
def test_bars_accepted(bars):
    assert Conditioning(bars=bars).bars == bars


@pytest.mark.parametrize("bars", [0, 257, -1, True, 4.0, "4"])
def test_bad_bars_raise(bars):
    with pytest.raises(InvalidConditioning, match="bars"):
        Conditioning(bars=bars)


@pytest.mark.parametrize("duration", [0, -1, 600.5, math.nan, math.inf])
def test_bad_duration_raises(duration):
    with pytest.raises(InvalidConditioning, match="duration"):
        Conditioning(duration_s=duration)


def test_duration_accepted():
    assert Conditioning(duration_s=0.5).duration_s == 0.5
    assert Conditioning(duration_s=600).duration_s == 600


def test_blank_text_raises():
    with pytest.raises(InvalidConditioning):
        Conditioning(text="   ")


def test_string_sequences_become_tuples():
    c = Conditioning(instruments="violin", tags=["a", "b"])
    assert c.instruments == ("violin",)
    assert c.tags == ("a", "b")


# ---- input files --------------------------------------------------------------------------------------

def test_missing_prompt_raises_invalid(tmp_path):
    with pytest.raises(InvalidConditioning, match="no such file"):
        Conditioning(prompt=tmp_path / "nope.mid")


def test_empty_prompt_raises_corrupt(tmp_path):
    path = tmp_path / "empty.mid"
    path.write_bytes(b"")
    with pytest.raises(CorruptInput, match="empty"):
        Conditioning(prompt=path)


def test_garbage_midi_raises_corrupt(tmp_path):
    path = tmp_path / "garbage.mid"
    path.write_bytes(b"this is not a midi file at all" * 10)
    with pytest.raises(CorruptInput):
        Conditioning(prompt=path)


def test_truncated_midi_raises_corrupt(tmp_path, midi_file):
    good = midi_file("good.mid", notes=[(0, 480, 60, 90), (480, 480, 62, 90)]).read_bytes()
    path = tmp_path / "truncated.mid"
    path.write_bytes(good[:20])
    with pytest.raises(CorruptInput):
        Conditioning(prompt=path)


def test_garbage_audio_raises_corrupt(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF....WAVEnot really" + bytes(range(256)))
    with pytest.raises(CorruptInput):
        Conditioning(melody=path)


def test_unknown_file_type_raises(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("C D E")
    with pytest.raises(InvalidConditioning, match="unknown file type"):
        Conditioning(prompt=path)


def test_source_audio_must_be_audio(midi_file):
    with pytest.raises(InvalidConditioning, match="audio"):
        Conditioning(source_audio=midi_file())


def test_valid_files_and_their_capabilities(tmp_path, midi_file):
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, np.zeros(800, dtype=np.float32), 8000)
    mid = midi_file()
    c = Conditioning(prompt=mid, melody=wav)
    assert c.prompt == str(mid)
    assert c.capabilities_used() == {Capability.PROMPT_MIDI, Capability.MELODY_AUDIO}
    c = Conditioning(prompt=wav, melody=mid)
    assert c.capabilities_used() == {Capability.PROMPT_AUDIO, Capability.MELODY_MIDI}


# ---- capabilities -------------------------------------------------------------------------------------

def test_capabilities_used_lists_exactly_the_set_fields():
    assert Conditioning().capabilities_used() == set()
    c = Conditioning(text="a reel", key="D major", tempo_bpm=120, bars=8, instruments=("violin",), duration_s=4)
    assert c.capabilities_used() == {Capability.TEXT, Capability.KEY, Capability.TEMPO, Capability.BARS,
                                     Capability.INSTRUMENTS, Capability.DURATION}


def test_require_supported_names_every_missing_field():
    caps = frozenset({Capability.KEY, Capability.BARS})
    require_supported(Conditioning(key="D major", bars=4), caps, "m")  # no error
    with pytest.raises(UnsupportedConditioning) as info:
        require_supported(Conditioning(key="D major", duration_s=5, chords=("C", "G")), caps, "m")
    message = str(info.value)
    assert "duration_s" in message and "chords" in message and "'m'" in message
    assert "key" not in message.split("cannot honour")[1].split(";")[0]


def test_studio_refuses_duration_on_symbolic_model(studio):
    with pytest.raises(UnsupportedConditioning, match="duration_s"):
        studio.generate("tiny-remi", Conditioning(duration_s=5, bars=2))


def test_studio_refuses_melody_on_symbolic_model(studio, midi_file):
    with pytest.raises(UnsupportedConditioning, match="melody_midi"):
        studio.generate("tiny-remi", Conditioning(melody=midi_file(), bars=2))


def test_to_dict_from_dict_roundtrip():
    c = Conditioning(text="a jig", key="G major", instruments=("violin", "flute"), bars=4)
    d = c.to_dict()
    assert d == {"text": "a jig", "key": "G major", "instruments": ["violin", "flute"], "bars": 4}
    assert Conditioning.from_dict(d) == c
    with pytest.raises(InvalidConditioning, match="unknown conditioning fields: bogus"):
        Conditioning.from_dict({"bogus": 1})


# ---- Sampling ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"temperature": -1}, {"temperature": 5.1}, {"temperature": math.nan}, {"top_p": 0}, {"top_p": 1.5},
    {"num_samples": 0}, {"num_samples": 65}, {"seed": -1}, {"seed": 1.5}, {"top_k": -1},
    {"repetition_penalty": 0.1}, {"cfg_scale": 31}, {"steps": 0}, {"max_tokens": 0}, {"temperature": True},
])
def test_bad_sampling_raises(kwargs):
    with pytest.raises(InvalidConditioning):
        Sampling(**kwargs)


def test_sampling_defaults_and_with_seed():
    s = Sampling(temperature=0, top_p=1, num_samples=64, seed=0)
    assert s.with_seed(7).seed == 7 and s.with_seed(7).num_samples == 64
    assert Sampling().to_dict()["seed"] is None


def test_sampling_knobs_set_lists_changed_fields_only():
    from cadenza.conditioning import Sampling

    assert Sampling().knobs_set() == set()
    assert Sampling(seed=3, num_samples=2).knobs_set() == set()
    assert Sampling(steps=20, strength=0.5, temperature=0.9).knobs_set() == {"steps", "strength", "temperature"}


def test_sampling_rejects_bad_strength_and_blank_scheduler():
    import pytest

    from cadenza.conditioning import Sampling
    from cadenza.errors import InvalidConditioning

    for bad in (0, 1.5, float("nan")):
        with pytest.raises(InvalidConditioning, match="strength"):
            Sampling(strength=bad)
    with pytest.raises(InvalidConditioning, match="scheduler"):
        Sampling(scheduler=" ")
