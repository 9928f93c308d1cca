"""Widget values -> Conditioning + Sampling (plain Python, no browser): which widgets each model shows,
what empty and default widgets mean, and that values of hidden widgets never reach a request."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import soundfile

from cadenza.app.web.controls import (CONDITIONING_WIDGETS, SAMPLING_WIDGETS, UNIVERSAL_SAMPLING, prompt_file_types,
                                      visible_widgets)
from cadenza.app.web.form import conditioning_from_form, sampling_from_form
from cadenza.app.web.uploads import UploadPolicy
from cadenza.conditioning import Capability, Conditioning, Sampling, require_sampling_supported, require_supported
from cadenza.errors import CorruptInput, InvalidConditioning
from cadenza.studio import ModelInfo, Studio


def info(name: str, family: str, output: str, caps: set[str]) -> ModelInfo:
    return ModelInfo(name=name, family=family, output=output, capabilities=tuple(sorted(caps)), license="test",
                     description="", path="", sampling=tuple(sorted(Studio.families()[family].sampling)),
                     choices=dict(Studio.families()[family].choices))


SYMBOLIC = info("folk", "symbolic", "midi", {"text", "style", "key", "tempo_bpm", "time_signature", "bars",
                                               "instruments", "prompt_midi"})
CODEC = info("songs", "codec_lm", "audio", {"text", "duration_s", "melody_audio", "prompt_audio"})
DIFFUSION = info("pads", "diffusion", "audio", {"text", "negative_text", "duration_s", "prompt_audio"})
DDSP = info("violin", "ddsp", "audio", {"source_audio", "melody_midi"})
ALL = (SYMBOLIC, CODEC, DIFFUSION, DDSP)


@pytest.fixture
def uploads(tmp_path) -> UploadPolicy:
    (tmp_path / "uploads").mkdir()
    return UploadPolicy(roots=(tmp_path / "uploads",), max_bytes=200_000)


@pytest.fixture
def wav(tmp_path):
    def write(name: str = "hum.wav", seconds: float = 0.5):
        path = tmp_path / "uploads" / name
        t = np.arange(int(16000 * seconds)) / 16000
        soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
        return path
    return write


@pytest.fixture
def upload_midi(midi_file):
    def write(name: str = "tune.mid"):
        return midi_file(f"uploads/{name}", notes=((0, 480, 62, 90), (480, 480, 66, 90)))
    return write


def test_every_capability_and_sampling_field_has_a_widget():
    served = {c for needs in CONDITIONING_WIDGETS.values() for c in needs}
    assert served == set(Capability)
    assert set(SAMPLING_WIDGETS) | set(UNIVERSAL_SAMPLING) == {f.name for f in fields(Sampling)}


def test_symbolic_shows_exactly_its_controls():
    shown = visible_widgets(SYMBOLIC.capabilities, SYMBOLIC.sampling)
    assert shown == {"text", "style", "key", "tempo_bpm", "time_signature", "bars", "instruments", "prompt",
                     "seed", "num_samples", "temperature", "top_k", "top_p", "repetition_penalty", "max_tokens",
                     "key_bias"}


def test_audio_models_show_their_controls_and_not_symbolic_ones():
    codec = visible_widgets(CODEC.capabilities, CODEC.sampling)
    assert {"text", "duration_s", "melody_audio", "prompt", "cfg_scale", "temperature"} <= codec
    assert not {"key", "bars", "steps", "key_bias", "melody_midi", "source_audio"} & codec
    diffusion = visible_widgets(DIFFUSION.capabilities, DIFFUSION.sampling)
    assert {"negative_text", "steps", "scheduler", "strength", "cfg_scale"} <= diffusion
    assert "temperature" not in diffusion
    assert visible_widgets(DDSP.capabilities, DDSP.sampling) == {"source_audio", "melody_midi", "seed", "num_samples"}


def test_a_new_model_is_driven_by_its_lists_alone():
    newcomer = ModelInfo("new", "future", "audio", ("chords", "tags"), "", "", "", ("steps",))
    shown = visible_widgets(newcomer.capabilities, newcomer.sampling)
    assert shown == {"chords", "tags", "steps", "seed", "num_samples"}


def test_prompt_file_types_follow_capabilities():
    assert prompt_file_types(SYMBOLIC.capabilities) == [".mid", ".midi"]
    assert ".wav" in prompt_file_types(CODEC.capabilities) and ".mid" not in prompt_file_types(CODEC.capabilities)


@pytest.mark.parametrize("model", ALL, ids=lambda m: m.family)
def test_untouched_form_is_the_default_request(model, uploads):
    form = {"text": "", "negative_text": "  ", "style": "", "key": "", "time_signature": "", "tempo_bpm": "",
            "bars": "", "duration_s": None, "instruments": [], "tags": "", "chords": "", "prompt": None,
            "melody_midi": None, "melody_audio": None, "source_audio": None, "seed": "", "num_samples": 1,
            "temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "cfg_scale": 1.0,
            "steps": "", "scheduler": "", "strength": "", "key_bias": "", "max_tokens": ""}
    assert conditioning_from_form(model, form, uploads) == Conditioning()
    sampling = sampling_from_form(model, form)
    assert sampling == Sampling()
    require_sampling_supported(sampling, frozenset(model.sampling), model.name)


def test_symbolic_values_map_to_fields(uploads):
    form = {"text": "  a jig ", "style": "irish", "key": "d major", "time_signature": "6/8", "tempo_bpm": "112",
            "bars": "8", "instruments": ["violin", "flute"], "seed": "42", "num_samples": 2.0, "temperature": 0.8,
            "top_k": 20, "top_p": 0.95, "key_bias": "3", "max_tokens": "900"}
    c = conditioning_from_form(SYMBOLIC, form, uploads)
    assert c == Conditioning(text="a jig", style="irish", key="D major", time_signature="6/8", tempo_bpm=112.0,
                             bars=8, instruments=("violin", "flute"))
    require_supported(c, frozenset(Capability(x) for x in SYMBOLIC.capabilities), SYMBOLIC.name)
    s = sampling_from_form(SYMBOLIC, form)
    assert s == Sampling(seed=42, num_samples=2, temperature=0.8, top_k=20, top_p=0.95, key_bias=3.0, max_tokens=900)
    assert isinstance(s.top_k, int) and isinstance(s.max_tokens, int) and isinstance(s.seed, int)
    require_sampling_supported(s, frozenset(SYMBOLIC.sampling), SYMBOLIC.name)


def test_values_in_hidden_widgets_never_reach_the_request(uploads, wav):
    form = {"duration_s": "10", "negative_text": "drums", "source_audio": str(wav()), "cfg_scale": 4.0, "steps": "30",
            "scheduler": "ddim", "bars": "4"}
    c = conditioning_from_form(SYMBOLIC, form, uploads)
    assert c == Conditioning(bars=4)
    assert sampling_from_form(SYMBOLIC, form) == Sampling()
    assert conditioning_from_form(DDSP, {"bars": "4", "key": "C major"}, uploads) == Conditioning()
    assert sampling_from_form(DDSP, {"temperature": 0.5, "seed": "3"}) == Sampling(seed=3)


def test_diffusion_sampling_fields(uploads):
    form = {"text": "warm pads", "negative_text": "noise", "duration_s": "7.5", "steps": "25", "scheduler": "ddim",
            "cfg_scale": 3.5, "strength": "0.6", "temperature": 0.3}
    assert conditioning_from_form(DIFFUSION, form, uploads) == Conditioning(text="warm pads", negative_text="noise",
                                                                           duration_s=7.5)
    assert sampling_from_form(DIFFUSION, form) == Sampling(steps=25, scheduler="ddim", cfg_scale=3.5, strength=0.6)


def test_lists_from_text(uploads):
    tags = info("tagger", "codec_lm", "audio", {"tags", "chords"})
    c = conditioning_from_form(tags, {"tags": "folk, dance ,, ", "chords": "D G | A7,D"}, uploads)
    assert c.tags == ("folk", "dance") and c.chords == ("D", "G", "A7", "D")


@pytest.mark.parametrize("form, message", [
    ({"bars": "4.5"}, "bars must be a whole number"),
    ({"bars": "many"}, "bars must be a number"),
    ({"tempo_bpm": "fast"}, "tempo must be a number"),
    ({"tempo_bpm": "900"}, "outside 20-300"),
    ({"key": "H major"}, "H major"),
])
def test_bad_values_give_readable_errors(form, message, uploads):
    with pytest.raises(InvalidConditioning, match=message):
        conditioning_from_form(SYMBOLIC, form, uploads)


@pytest.mark.parametrize("form, message", [
    ({"seed": "-1"}, "seed"), ({"seed": "1.5"}, "whole number"), ({"top_p": 0.0}, "top_p"),
    ({"num_samples": 0}, "num_samples"), ({"key_bias": "x"}, "key bias must be a number"),
])
def test_bad_sampling_gives_readable_errors(form, message):
    with pytest.raises(InvalidConditioning, match=message):
        sampling_from_form(SYMBOLIC, {"num_samples": 1, **form})


def test_uploaded_midi_prompt(uploads, upload_midi):
    path = upload_midi()
    c = conditioning_from_form(SYMBOLIC, {"prompt": str(path), "bars": "2"}, uploads)
    assert c.prompt == str(path.resolve()) and Capability.PROMPT_MIDI in c.capabilities_used()


def test_corrupt_midi_prompt_is_reported(uploads, tmp_path):
    broken = tmp_path / "uploads" / "broken.mid"
    broken.write_bytes(b"this is not midi at all")
    with pytest.raises(CorruptInput, match="not a MIDI file"):
        conditioning_from_form(SYMBOLIC, {"prompt": str(broken)}, uploads)


def test_audio_prompt_refused_by_a_midi_only_model(uploads, wav):
    with pytest.raises(InvalidConditioning, match=r"use \.mid, \.midi"):
        conditioning_from_form(SYMBOLIC, {"prompt": str(wav())}, uploads)


def test_paths_outside_the_upload_roots_are_refused(uploads, tmp_path, midi_file):
    outside = midi_file("elsewhere.mid")
    with pytest.raises(InvalidConditioning, match="not uploaded through this page"):
        conditioning_from_form(SYMBOLIC, {"prompt": str(outside)}, uploads)
    sneaky = tmp_path / "uploads" / "link.mid"
    sneaky.symlink_to(outside)
    with pytest.raises(InvalidConditioning, match="not uploaded through this page"):
        conditioning_from_form(SYMBOLIC, {"prompt": str(sneaky)}, uploads)
    with pytest.raises(InvalidConditioning, match="not uploaded through this page"):
        conditioning_from_form(SYMBOLIC, {"prompt": str(tmp_path / "uploads" / ".." / "elsewhere.mid")}, uploads)
    with pytest.raises(InvalidConditioning, match="not uploaded through this page"):
        conditioning_from_form(SYMBOLIC, {"prompt": "/etc/passwd"}, uploads)


def test_upload_limits(uploads, tmp_path, wav):
    big = wav("long.wav", seconds=10)  # ~320 kB > the fixture's 200 kB limit
    with pytest.raises(InvalidConditioning, match="the limit is"):
        conditioning_from_form(CODEC, {"melody_audio": str(big)}, uploads)
    empty = tmp_path / "uploads" / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(CorruptInput, match="empty"):
        conditioning_from_form(CODEC, {"melody_audio": str(empty)}, uploads)
    with pytest.raises(InvalidConditioning, match="is gone"):
        conditioning_from_form(CODEC, {"melody_audio": str(tmp_path / "uploads" / "missing.wav")}, uploads)


def test_melody_from_one_source_only(uploads, wav, upload_midi):
    both = info("both", "codec_lm", "audio", {"melody_audio", "melody_midi"})
    hum = wav()
    assert conditioning_from_form(both, {"melody_audio": str(hum)}, uploads).melody == str(hum.resolve())
    assert conditioning_from_form(both, {"melody_midi": str(upload_midi())}, uploads).melody.endswith("tune.mid")
    with pytest.raises(InvalidConditioning, match="give one melody"):
        conditioning_from_form(both, {"melody_audio": str(hum), "melody_midi": str(upload_midi())}, uploads)


def test_source_audio_for_timbre_transfer(uploads, wav):
    c = conditioning_from_form(DDSP, {"source_audio": str(wav())}, uploads)
    assert c.source_audio.endswith("hum.wav") and c.capabilities_used() == {Capability.SOURCE_AUDIO}


def test_error_messages_name_files_not_server_folders(uploads, tmp_path):
    from cadenza.app.web.uploads import public_message

    broken = tmp_path / "uploads" / "abc123" / "broken.mid"
    broken.parent.mkdir()
    broken.write_bytes(b"nope")
    with pytest.raises(CorruptInput) as caught:
        conditioning_from_form(SYMBOLIC, {"prompt": str(broken)}, uploads)
    message = public_message(caught.value, uploads.roots)
    assert "broken.mid" in message and str(tmp_path) not in message and "abc123" not in message
    assert "not a MIDI file" in message


FORMED = info("folk-form", "symbolic", "midi", {"text", "style", "bars", "prompt_midi", "form", "regenerate"})


def test_form_and_regenerate_follow_their_capabilities():
    assert {"form", "regenerate"} <= visible_widgets(FORMED.capabilities, FORMED.sampling)
    assert not {"form", "regenerate"} & visible_widgets(SYMBOLIC.capabilities, SYMBOLIC.sampling)


def test_form_widget_reaches_the_conditioning(uploads):
    c = conditioning_from_form(FORMED, {"form": "  AABB ", "bars": "16"}, uploads)
    assert c == Conditioning(form="AABB", bars=16) and Capability.FORM in c.capabilities_used()
    assert conditioning_from_form(FORMED, {"form": "A A' B B'"}, uploads).form == "A A' B B'"
    assert conditioning_from_form(FORMED, {"form": "  "}, uploads).form is None  # empty: the style's usual form
    assert conditioning_from_form(SYMBOLIC, {"form": "AABB"}, uploads).form is None  # hidden for that model
    with pytest.raises(InvalidConditioning):
        conditioning_from_form(FORMED, {"form": "A8 B8", "bars": "12"}, uploads)  # 16 bars planned, 12 asked


@pytest.mark.parametrize("text, span", [("5-8", (5, 8)), (" 5 - 8 ", (5, 8)), ("5\u20138", (5, 8)), ("5 to 8", (5, 8)),
                                        ("5..8", (5, 8)), ("3", (3, 3)), (4, (4, 4))])
def test_bar_range_reads_what_people_type(text, span):
    from cadenza.app.web.form import bar_range

    assert bar_range(text) == span


@pytest.mark.parametrize("text, message", [("", "which bars"), (None, "which bars"), ("8-5", "not after the last"),
                                           ("0-2", "1 or more"), ("bars five", "e.g. 5-8"), ("1-2-3", "e.g. 5-8")])
def test_bad_bar_ranges_give_readable_errors(text, message):
    from cadenza.app.web.form import bar_range

    with pytest.raises(InvalidConditioning, match=message):
        bar_range(text)


def test_regenerate_conditioning_from_a_result(uploads, upload_midi, midi_file):
    from cadenza.app.web.form import regenerate_conditioning

    path = upload_midi()
    c = regenerate_conditioning(FORMED, str(path), "1-2", uploads)
    assert c == Conditioning(prompt=str(path.resolve()), regenerate=(1, 2))
    assert Capability.REGENERATE in c.capabilities_used()
    with pytest.raises(InvalidConditioning, match="cannot regenerate bars"):
        regenerate_conditioning(SYMBOLIC, str(path), "1-2", uploads)
    with pytest.raises(InvalidConditioning, match="not uploaded through this page"):
        regenerate_conditioning(FORMED, str(midi_file("elsewhere.mid")), "1-2", uploads)
