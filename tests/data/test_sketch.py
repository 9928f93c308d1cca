"""A score's sketch: rendered as the training clips were, on what the text names, named as the captions do."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from cadenza.data.audio_corpus import ENSEMBLES, SOLO_INSTRUMENTS
from cadenza.data.sketch import (
    CLIP_LUFS,
    SKETCH_ACCENT_DB,
    accent_onsets,
    render_sketch,
    sketch_melody,
    sketch_programs,
)
from cadenza.fileio.audio import integrated_loudness
from cadenza.fileio.midi import load_midi

NOTES = [(0, 480, 67, 90), (480, 480, 71, 90), (960, 960, 74, 90)]


def test_a_sketch_lasts_exactly_as_asked_at_the_clips_loudness(midi_file):
    tune = load_midi(midi_file("tune.mid", notes=NOTES, qpm=120))
    for seconds in (1.0, 2.5, 4.0):  # cut inside the tune, at its end, padded after it
        audio = render_sketch(tune, (73,), 16000, seconds)
        assert audio.shape == (int(seconds * 16000),) and audio.dtype == np.float32
        assert np.isfinite(audio).all()
        assert abs(integrated_loudness(audio[None], 16000) - CLIP_LUFS) < 0.5
    assert np.abs(render_sketch(tune, (73,), 16000, 4.0)[int(3.5 * 16000):]).max() < 1e-3  # silence after the tail


@pytest.mark.parametrize("text,name,programs", [
    ("a jig on a solo flute", "flute", (73,)),
    ("a waltz for acoustic guitar", "acoustic guitar", (SOLO_INSTRUMENTS["acoustic guitar"][0],)),  # as the clips
    ("a chorale for string quartet in G major", "string quartet", ENSEMBLES["string quartet"]),
    ("a reel on the bagpipe", "bagpipe", (109,)),  # any General MIDI instrument
    ("a jig in D major", None, ()),
])
def test_the_text_names_the_programs_as_the_training_captions_do(text, name, programs):
    assert sketch_programs(text) == (name, tuple(programs))


def test_the_texts_instrument_is_the_sketchs_sound(midi_file):
    path = str(midi_file("tune.mid", notes=NOTES, qpm=120))
    flute, named = sketch_melody(path, "a jig on a solo flute", 16000, 2.5)
    violin, other = sketch_melody(path, "a jig on a solo violin", 16000, 2.5)
    own, nobody = sketch_melody(path, "a jig", 16000, 2.5)
    assert (named, other, nobody) == ("flute", "violin", None)
    assert np.array_equal(flute, render_sketch(load_midi(path), (73,), 16000, 2.5, SKETCH_ACCENT_DB))
    assert not np.allclose(flute, violin, atol=1e-3)
    own_program = render_sketch(load_midi(path), (), 16000, 2.5, SKETCH_ACCENT_DB)  # the file's own program (piano)
    assert np.array_equal(own, own_program)
    assert np.array_equal(flute, sketch_melody(path, "a jig on a solo flute", 16000, 2.5)[0])  # deterministic


def test_an_ensemble_plays_its_voices_from_the_top_down(monkeypatch):
    score = symusic.Score(480)
    for pitch in (48, 72, 60):  # bass, soprano, tenor: the top voice is the second track
        track = symusic.Track()
        track.notes.append(symusic.Note(0, 960, pitch, 90))
        score.tracks.append(track)
    seen = []

    class Spy:
        def __init__(self, options):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def render(self, s):
            seen.extend((int(t.notes[0].pitch), int(t.program)) for t in s.tracks)
            return np.zeros((1, 16000), dtype=np.float32)

    monkeypatch.setattr("cadenza.render.fluidsynth.FluidSynthRenderer", Spy)
    render_sketch(score, (40, 41, 42), 16000, 1.0)
    assert sorted(seen, reverse=True) == [(72, 40), (60, 41), (48, 42)]


def test_an_accent_lifts_each_onset_and_fades():
    rate = 1000
    audio = np.ones(2000, dtype=np.float32)
    accented = accent_onsets(audio, np.array([0.5, 1.2, 0.5]), rate, 6.0, decay_s=0.05)  # a repeated onset counts once
    peak = 10 ** (6.0 / 20)
    assert accented.shape == audio.shape and accented.dtype == np.float32
    assert np.array_equal(accented[:500], audio[:500])  # nothing before the first onset
    assert accented[500] == pytest.approx(peak, rel=1e-6) and accented[1200] == pytest.approx(peak, rel=1e-6)
    assert accented[550] == pytest.approx(1 + (peak - 1) * np.exp(-1), rel=1e-5)  # one time constant on
    assert accented[1199] == pytest.approx(1.0, abs=1e-5) and accented[-1] == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(accent_onsets(audio, np.array([0.5]), rate, 0.0), audio)  # 0 dB: unchanged
    assert np.array_equal(accent_onsets(audio, np.zeros(0), rate, 6.0), audio)  # no onset: unchanged


@pytest.mark.parametrize("args,match", [
    ((np.ones(10), np.array([0.0]), 100, -1.0), "accent_db"),
    ((np.ones(10), np.array([0.0]), 100, float("nan")), "accent_db"),
    ((np.ones((2, 10)), np.array([0.0]), 100, 3.0), r"\[T\]"),
])
def test_a_bad_accent_is_refused(args, match):
    with pytest.raises(ValueError, match=match):
        accent_onsets(*args)
    with pytest.raises(ValueError, match="decay_s"):
        accent_onsets(np.ones(10), np.array([0.0]), 100, 3.0, decay_s=0.0)


def test_the_performed_sketch_marks_note_starts_at_the_clips_loudness(midi_file):
    """Sustained notes on an organ (no attack of its own): accented, the first 30 ms of each note carry more of
    the sketch's energy than in the plain rendering, and the whole stays at the clips' loudness."""
    notes = [(0, 480, 60, 90), (480, 480, 64, 90), (960, 480, 67, 90), (1440, 480, 72, 90)]
    tune = load_midi(midi_file("organ.mid", notes=notes, qpm=120))
    plain = render_sketch(tune, (19,), 16000, 2.5)
    accented = render_sketch(tune, (19,), 16000, 2.5, SKETCH_ACCENT_DB)
    assert abs(integrated_loudness(accented[None], 16000) - CLIP_LUFS) < 0.5

    def start_share(audio):  # energy in the first 30 ms of each note over energy in its next 170 ms
        starts = [int(s * 16000) for s in (0.0, 0.5, 1.0, 1.5)]
        head = sum(float(np.sum(audio[s:s + 480] ** 2)) for s in starts)
        body = sum(float(np.sum(audio[s + 480:s + 3200] ** 2)) for s in starts)
        return head / body

    assert start_share(accented) > 1.5 * start_share(plain)
