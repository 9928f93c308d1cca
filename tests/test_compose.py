"""Compose, then perform: the plan (`cadenza.compose`) and Studio running it with a tiny score-reading
codec LM and the shipped composer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cadenza import Conditioning, Sampling, Studio
from cadenza.compose import DEFAULT_COMPOSER, bar_seconds, named_controls, performance, plan_compose
from cadenza.music.score_roll import SCORE_TAIL_S as TAIL_S
from cadenza.conditioning import Capability
from cadenza.errors import InvalidConditioning, UnsupportedConditioning

PERFORMS = frozenset({Capability.TEXT, Capability.DURATION, Capability.MELODY_MIDI})


def plan(conditioning, capabilities=PERFORMS, family="codec_lm", default_s=10.0, max_s=None, composer=DEFAULT_COMPOSER):
    return plan_compose(conditioning, capabilities, family, default_s=default_s, max_s=max_s, composer=composer)


def test_controls_named_in_text_or_fields_make_a_plan():
    controls, musical = named_controls(Conditioning(text="a march played by a solo cello in G minor at 90 BPM"))
    assert musical and controls == {"key": "G minor", "tempo_bpm": 90.0, "time_signature": "2/4"}
    made = plan(Conditioning(text="a march played by a solo cello in G minor at 90 BPM"))
    assert made.request.tempo_bpm == 90.0 and made.why == ("key", "tempo_bpm", "time_signature")
    # as many 2/4 bars at 90 BPM as 10 s hold, less the tail
    assert made.request.bars == int((10.0 - TAIL_S) // bar_seconds("2/4", 90.0))
    fields = plan(Conditioning(text="something warm and gentle", key="D major", bars=4))
    assert fields.request.bars == 4 and fields.request.key == "D major"
    assert fields.request.text is None  # nothing the composer knows in it: it gets the fields only


def test_no_controls_no_plan_unless_asked():
    assert plan(Conditioning(text="something warm and gentle")) is None
    assert plan(Conditioning(text="something warm and gentle", compose=True)) is not None
    assert plan(Conditioning(text="in D major", compose=False)) is None


def test_the_performer_limits_the_bars():
    made = plan(Conditioning(text="a reel in D major"), max_s=8.0, default_s=8.0)
    assert made.request.bars * bar_seconds("4/4", 110.0) <= 8.0 - TAIL_S + 1e-6


@pytest.mark.parametrize("conditioning, capabilities, family, composer, reason", [
    (Conditioning(text="in D major", compose=True), frozenset({Capability.TEXT}), "codec_lm", DEFAULT_COMPOSER,
     "does not perform"),
    (Conditioning(text="in D major", compose=True), PERFORMS, "codec_lm", None, "no composer"),
])
def test_compose_true_says_why_it_cannot(conditioning, capabilities, family, composer, reason):
    with pytest.raises(UnsupportedConditioning, match=reason):
        plan(conditioning, capabilities, family, composer=composer)
    assert plan(Conditioning(text="in D major"), capabilities, family, composer=composer) is None


def test_a_given_melody_or_prompt_is_performed_not_composed(tmp_path, midi_file):
    tune = midi_file("t.mid")
    assert plan(Conditioning(text="in D major", melody=str(tune))) is None
    with pytest.raises(UnsupportedConditioning, match="melody is given"):
        plan(Conditioning(text="in D major", melody=str(tune), compose=True))


def test_performance_keeps_the_sound_and_drops_the_controls(tmp_path, midi_file):
    tune = midi_file("t.mid")
    asked = Conditioning(text="a cello in G minor", key="G minor", tempo_bpm=90, negative_text="noise")
    performed = performance(asked, str(tune), 6.0, max_s=8.0)
    assert performed.melody == str(tune) and performed.key is None and performed.tempo_bpm is None
    assert performed.negative_text == "noise" and performed.duration_s == 6.0 + TAIL_S
    assert performance(asked, str(tune), 7.9, max_s=8.0).duration_s == 8.0
    with pytest.raises(InvalidConditioning, match="fewer bars"):
        performance(asked, str(tune), 12.0, max_s=8.0)


@pytest.fixture
def score_model_root(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "generators" / "codec_lm"))
    from test_score_conditioning import write_checkpoint

    from cadenza.music.score_roll import SCORE_DIM

    write_checkpoint(tmp_path / "tiny-score-lm", SCORE_DIM)
    return tmp_path


def test_studio_composes_then_performs_and_saves_the_score(score_model_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    studio = Studio(model_dirs=[score_model_root])
    if DEFAULT_COMPOSER not in studio.specs():
        pytest.skip(f"{DEFAULT_COMPOSER} is not installed")
    request = Conditioning(text="a slow air for flute in E minor, 2 bars, 3/4 time")
    outs = studio.generate("tiny-score-lm", request, Sampling(seed=3, num_samples=2))
    assert len(outs) == 2 and all(o.score is not None for o in outs)
    composed = outs[0].provenance.notes["composed"]
    assert composed["composer"] == DEFAULT_COMPOSER and "key" in composed["controls"]
    assert outs[0].provenance.conditioning == request.to_dict() and outs[0].provenance.seed == 3
    score = outs[0].score.score
    assert f"{score.time_signatures[0].numerator}/{score.time_signatures[0].denominator}" == "3/4"
    # the audio lasts the score plus the tail
    assert abs(outs[0].duration_s - (outs[0].score.duration_s + TAIL_S)) < 0.05
    path = outs[0].save(tmp_path / "air.wav")
    assert (tmp_path / "air.mid").is_file() and (tmp_path / "air.mid.json").is_file()
    assert json.loads((tmp_path / "air.wav.json").read_text())["notes"]["score_file"] == "air.mid"
    again = studio.generate("tiny-score-lm", request, Sampling(seed=3, num_samples=2))
    assert all((a.samples == b.samples).all() for a, b in zip(outs, again))
    direct = studio.generate("tiny-score-lm", Conditioning(text=request.text, compose=False, duration_s=2.0),
                             Sampling(seed=3))
    assert direct[0].score is None and "composed" not in direct[0].provenance.notes
    assert path.is_file()
    remade = studio.remake(tmp_path / "air.wav.json")  # composes again from the request as asked, same seed
    assert (remade.samples == outs[0].samples).all() and remade.score is not None
    picture = outs[0].spectrogram(tmp_path / "air.png")  # the score's piano roll above the spectrogram
    assert picture.stat().st_size > 10_000


def test_compose_is_refused_for_the_composer_itself(studio):
    with pytest.raises(UnsupportedConditioning, match="writes MIDI itself"):
        studio.generate("tiny-remi", Conditioning(text="in D major", compose=True), Sampling(seed=0))


def test_a_hummed_melody_is_heard_as_notes_and_performed(score_model_root, tmp_path, monkeypatch):
    """An audio melody for a model that performs MIDI: Studio transcribes it first (one line, quantised)."""
    import soundfile

    sys.path.insert(0, str(Path(__file__).parent / "analysis"))
    from made_audio import hum

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wav = tmp_path / "hum.wav"
    soundfile.write(wav, hum([62, 64, 66, 67], note_s=0.5, sr=16000), 16000)
    studio = Studio(model_dirs=[score_model_root])
    out = studio.generate("tiny-score-lm", Conditioning(text="a flute", melody=str(wav)), Sampling(seed=0))[0]
    assert "melody" in out.transcribed and out.provenance.conditioning["melody"] == str(wav)
    heard = sorted({int(n.pitch) for t in out.transcribed["melody"].score.tracks for n in t.notes})
    assert heard == [62, 64, 66, 67]
    out.save(tmp_path / "flute.wav")
    assert (tmp_path / "flute.melody.mid").is_file()


def test_the_shipped_diffusion_model_performs_a_melody_for_as_long_as_it_lasts(midi_file, monkeypatch):
    """No duration given: the score's length plus the tail (the shipped checkpoint reads a score)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    studio = Studio()
    if "diffusion-folk-small" not in studio.specs() or Capability.MELODY_MIDI not in studio.spec(
            "diffusion-folk-small").capabilities:
        pytest.skip("the shipped diffusion model does not read a score")
    tune = midi_file("tune.mid", notes=[(0, 480, 67, 90), (480, 480, 71, 90), (960, 960, 74, 90)], qpm=120)
    out = studio.generate("diffusion-folk-small", Conditioning(text="a solo harp", melody=str(tune)),
                          Sampling(seed=0, steps=4))[0]
    assert abs(out.duration_s - (2.0 + TAIL_S)) < 0.05
    long_tune = midi_file("long.mid", notes=[(i * 480, 480, 60 + i % 5, 90) for i in range(20)], qpm=120)
    with pytest.raises(InvalidConditioning, match="set a duration"):  # 10 s of melody, 8 s at most: not cut silently
        studio.generate("diffusion-folk-small", Conditioning(text="a harp", melody=str(long_tune)), Sampling(seed=0))
    cut = studio.generate("diffusion-folk-small", Conditioning(text="a harp", melody=str(long_tune), duration_s=3.0),
                          Sampling(seed=0, steps=4))[0]
    assert abs(cut.duration_s - 3.0) < 0.05


@pytest.mark.parametrize("pitches,low,high,shift", [
    ([72, 76, 79, 84], 36, 76, -12),   # a treble tune for a cello: one octave down fits it all
    ([72, 76, 79, 84], 36, 60, -24),
    ([60, 64, 67], 55, 100, 0),        # already in a violin's range
    ([50, 52, 55], 60, 96, 12),        # a low line for a flute goes up
    ([48, 84], 55, 82, -12),           # wider than the range: up or down fit one note each, the lower wins
    ([], 36, 76, 0),
])
def test_octave_shift_puts_the_tune_in_range(pitches, low, high, shift):
    from cadenza.compose import octave_shift

    assert octave_shift(pitches, low, high) == shift


def test_a_composed_score_is_placed_in_the_named_instruments_register(midi_file):
    from cadenza.compose import in_register
    from cadenza.data.audio_corpus import SOLO_INSTRUMENTS
    from cadenza.outputs import MidiOutput

    score = MidiOutput.load(midi_file("tune.mid", notes=[(0, 480, 74, 90), (480, 480, 79, 90), (960, 480, 84, 90)]))
    cello = in_register(score, "a march played by a solo cello in G minor")
    low, high = SOLO_INSTRUMENTS["cello"][1]
    assert [n.pitch for n in cello.score.tracks[0].notes] == [62, 67, 72]  # one octave down: all inside
    assert all(low <= n.pitch <= high for n in cello.score.tracks[0].notes)
    assert cello.provenance.notes["register_shift"] == -12
    assert [n.pitch for n in score.score.tracks[0].notes] == [74, 79, 84]  # the composer's own is left as it was
    assert in_register(score, "a jig on a solo flute") is score  # fits a flute already
    assert in_register(score, "a string quartet") is score and in_register(score, None) is score  # no solo range
