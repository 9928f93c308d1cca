"""FluidSynth rendering, checked with listening proxies: pitch by FFT, timing by onsets, lengths."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from cadenza.errors import CorruptInput, MissingDependency
from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions, find_soundfont


def fundamental_hz(audio: np.ndarray, sr: int, start_s: float, stop_s: float) -> float:
    x = audio.mean(axis=0)[int(start_s * sr): int(stop_s * sr)]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size), n=1 << 18))
    return float(np.fft.rfftfreq(1 << 18, 1 / sr)[spectrum.argmax()])


def onset_s(audio: np.ndarray, sr: int, threshold: float = 0.02) -> float:
    envelope = np.abs(audio).max(axis=0)
    return float(np.argmax(envelope > threshold * envelope.max()) / sr)


@pytest.mark.parametrize(("pitch", "hz"), [(60, 261.63), (69, 440.0)])
def test_note_pitch(renderer, make_score, pitch, hz):
    audio = renderer.render(make_score(notes=[(0, 960, pitch, 100)]))  # acoustic grand piano
    assert fundamental_hz(audio, 22050, 0.2, 0.9) == pytest.approx(hz, rel=0.003)


def test_length_is_last_note_end_plus_tail(renderer, make_score, fast_options):
    # No tempo event: 1440 ticks at 480 per beat and 120 BPM end at 1.5 s.
    audio = renderer.render(make_score(notes=[(0, 480, 60, 100), (960, 480, 64, 100)]))
    expected = math.ceil((1.5 + fast_options.tail_s) * fast_options.sample_rate)
    assert audio.shape == (2, expected) and audio.dtype == np.float32
    assert np.abs(audio).max() > 0.01
    assert onset_s(audio, fast_options.sample_rate) < 0.02


def test_no_tempo_plays_at_120_bpm(renderer, make_score):
    late = make_score(notes=[(960, 240, 72, 110)], program=115)  # woodblock, 2 beats in
    assert onset_s(renderer.render(late), 22050) == pytest.approx(1.0, abs=0.01)
    slow = make_score(notes=[(960, 240, 72, 110)], program=115, qpm=60)
    assert onset_s(renderer.render(slow), 22050) == pytest.approx(2.0, abs=0.01)


def test_each_file_renders_as_on_a_fresh_synth(renderer, make_score, fast_options):
    # A held sustain pedal, many voices and a pitch bend must not leak into the next file.
    noisy = make_score(notes=[(i * 60, 900, 40 + i % 40, 120) for i in range(60)], program=48,
                       controls=[(0, 64, 127), (0, 7, 30)])
    quiet = make_score(notes=[(0, 480, 67, 90)])
    renderer.render(noisy)
    after_other = renderer.render(quiet)
    with FluidSynthRenderer(fast_options) as fresh:
        assert np.array_equal(after_other, fresh.render(quiet))
    assert np.array_equal(after_other, renderer.render(quiet))


def test_effects_are_reset_too(make_score, fast_options):
    options = RenderOptions(**{**fast_options.__dict__, "reverb": True, "chorus": True})
    first, second = make_score(notes=[(0, 960, 50, 127)], program=19), make_score(notes=[(0, 240, 79, 80)])
    with FluidSynthRenderer(options) as r, FluidSynthRenderer(options) as fresh:
        r.render(first)
        assert np.array_equal(r.render(second), fresh.render(second))


def test_drums_use_the_percussion_bank(renderer, make_score):
    kick = renderer.render(make_score(notes=[(0, 120, 36, 120)], drum=True))
    assert np.abs(kick).max() > 0.01
    piano = renderer.render(make_score(notes=[(0, 120, 36, 120)]))
    assert not np.array_equal(kick, piano)


def test_mono_and_normalised(make_score, fast_options):
    options = RenderOptions(**{**fast_options.__dict__, "stereo": False, "normalize_lufs": -16.0})
    import pyloudnorm

    with FluidSynthRenderer(options) as r:
        audio = r.render(make_score(notes=[(i * 240, 240, 60 + i, 100) for i in range(8)]))
    assert audio.shape[0] == 1
    assert pyloudnorm.Meter(22050).integrated_loudness(audio.T.astype(np.float64)) == pytest.approx(-16.0, abs=0.1)


def test_render_accepts_a_path_and_rejects_empty_scores(renderer, write_midi, make_score):
    assert renderer.render(write_midi(notes=[(0, 480, 60, 100)])).shape[0] == 2
    with pytest.raises(CorruptInput, match="no notes"):
        renderer.render(make_score(notes=[]))
    with pytest.raises(CorruptInput, match="not found"):
        renderer.render("/nonexistent/song.mid")


def test_soundfont_lookup(tmp_path, monkeypatch):
    with pytest.raises(MissingDependency, match="not found"):
        find_soundfont(tmp_path / "missing.sf2")
    fake = tmp_path / "mine.sf2"
    fake.write_bytes(b"RIFF")
    monkeypatch.setenv("CADENZA_SOUNDFONT", str(fake))
    assert find_soundfont() == fake
    assert find_soundfont(fake) == fake


def test_missing_pyfluidsynth_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # makes `import fluidsynth` raise ImportError
    with pytest.raises(MissingDependency) as info:
        FluidSynthRenderer(RenderOptions())
    assert "sudo apt-get install fluidsynth fluid-soundfont-gm" in str(info.value)
    assert "pip install pyfluidsynth" in str(info.value)


def test_options_are_validated():
    from cadenza.errors import InvalidConditioning

    with pytest.raises(InvalidConditioning, match="sample_rate"):
        RenderOptions(sample_rate=100)
    with pytest.raises(InvalidConditioning, match="gain"):
        RenderOptions(gain=0.0)


def test_a_render_records_the_loudness_it_reached(tmp_path, score_of):
    """Soft notes with a few fortissimo chords: the sidecar holds the loudness measured after limiting,
    within 0.5 LU of the target or with the reason why not."""
    pytest.importorskip("fluidsynth")
    import json

    from cadenza.fileio.audio import integrated_loudness, read_audio
    from cadenza.outputs import MidiOutput, Provenance
    from cadenza.render.fluidsynth import RenderOptions, render_output

    notes = [(i * 240, 200, 60 + i % 12, 20) for i in range(24)]
    notes += [(i * 1440, 400, pitch, 127) for i in range(4) for pitch in (36, 48, 55, 60, 64, 67, 72)]
    midi = MidiOutput(score_of(notes), Provenance("t", "file", None, {}, {}, None))
    audio = render_output(midi, RenderOptions(normalize_lufs=-14.0))
    path = audio.save(tmp_path / "x.wav")
    record = json.loads((tmp_path / "x.wav.json").read_text())["notes"]["loudness"]
    samples, sr = read_audio(path)
    assert record["target_lufs"] == -14.0
    assert record["measured_lufs"] == pytest.approx(integrated_loudness(samples, sr), abs=0.05)
    assert abs(record["measured_lufs"] + 14.0) <= 0.5 or record["why_not"]
