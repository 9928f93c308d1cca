"""MIDI rendered with a DDSP instrument: voice splitting, note curves, mix and stems, Studio and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from cadenza.app.cli import main
from cadenza.errors import CorruptInput, UnsupportedConditioning
from cadenza.generators.ddsp.midi import NoteRenderOptions, note_controls, split_voices
from cadenza.generators.ddsp.model import DDSPDecoder, Instrument, InstrumentStats
from cadenza.outputs import MidiOutput, Provenance
from cadenza.fileio.audio import read_audio

from ddsp_fixtures import TINY_CONFIG, TINY_NAME


def chord_score() -> symusic.Score:
    """Two tracks at 120 BPM (480 ticks/quarter): a C major triad then a melody note; a bass line."""
    score = symusic.Score(480)
    upper = symusic.Track("piano", program=0)
    for pitch in (60, 64, 67):
        upper.notes.append(symusic.Note(0, 960, pitch, 90))
    upper.notes.append(symusic.Note(960, 480, 72, 70))
    bass = symusic.Track("bass", program=32)
    bass.notes.append(symusic.Note(0, 1920, 36, 100))
    drums = symusic.Track("drums", program=0, is_drum=True)
    drums.notes.append(symusic.Note(0, 120, 36, 100))
    score.tracks.extend([upper, bass, drums])
    return score


def test_split_voices_makes_monophonic_lines():
    voices = split_voices(chord_score())
    names = [name for name, _ in voices]
    assert names == ["piano-voice1", "piano-voice2", "piano-voice3", "bass"]
    for _, notes in voices:
        assert np.all(notes[1:, 0] >= notes[:-1, 1] - 1e-6)  # no overlaps inside a voice
    assert sum(len(notes) for _, notes in voices) == 5
    first = voices[0][1]
    assert first[:, 2].tolist() == [67, 72]  # the top line continues to the nearest pitch


def test_note_controls_shape_the_notes():
    instrument = Instrument(DDSPDecoder(TINY_CONFIG), InstrumentStats(pitch_low=48, pitch_high=84))
    notes = np.array([[0.5, 1.0, 69, 127], [1.0, 1.5, 100, 40]])
    f0, ld = note_controls(notes, 250, instrument, NoteRenderOptions(vibrato_cents=50))
    assert f0.shape == ld.shape == (250,)
    assert ld[:50].max() == pytest.approx(-120.0)  # silent before the first note
    assert 420 < f0[70] < 460  # A4 with vibrato
    assert f0[120] == pytest.approx(440 * 2 ** ((76 - 69) / 12), rel=1e-3)  # MIDI 100 moved down into range: 76
    assert ld[80] > ld[130]  # velocity 127 louder than 40
    assert ld[100] < ld[95]  # re-articulation dip at the second onset
    assert ld[240] < -100  # released


def test_studio_render_mix_and_stems(studio):
    output = MidiOutput(chord_score(), Provenance("test", "file", None, {}, {}, None))
    mix = studio.render(output, synth="ddsp:tiny", normalize_lufs=None)
    assert mix.sample_rate == 16000 and mix.samples.shape[0] == 1
    assert mix.duration_s == pytest.approx(2.0 + 0.5, abs=0.05)
    assert mix.provenance.notes["rendered_with"] == f"ddsp:{TINY_NAME}"
    assert [s.provenance.notes["voice"] for s in mix.stems] == ["piano-voice1", "piano-voice2", "piano-voice3", "bass"]
    mix2 = studio.render(output, synth=f"ddsp:{TINY_NAME}", normalize_lufs=None, sample_rate=22050)
    assert len(mix2.stems) == 4 and mix2.sample_rate == 22050
    assert np.allclose(sum(s.samples for s in mix2.stems), mix2.samples, atol=1e-5)
    with pytest.raises(UnsupportedConditioning, match="gain"):
        studio.render(output, synth="ddsp:tiny", gain=0.3)
    with pytest.raises(UnsupportedConditioning):
        studio.render(output, synth="ddsp:remi-folk-small" if "remi-folk-small" in studio.specs() else "organ")
    with pytest.raises(UnsupportedConditioning):
        studio.render(output, synth="ddsp:tiny", soundfont="my.sf2")
    drums_only = symusic.Score(480)
    drums = symusic.Track("drums", program=0, is_drum=True)
    drums.notes.append(symusic.Note(0, 120, 36, 100))
    drums_only.tracks.append(drums)
    with pytest.raises(CorruptInput):
        studio.render(MidiOutput(drums_only, output.provenance), synth="ddsp:tiny")


def test_cli_render_with_stems(model_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_MODELS", str(model_root))
    midi = tmp_path / "song.mid"
    chord_score().dump_midi(str(midi))
    out = tmp_path / "song.wav"
    assert main(["render", str(midi), "-o", str(out), "--synth", "ddsp:tiny", "--stems", str(tmp_path / "stems"),
                 "--vibrato", "30", "--sample-rate", "16000"]) == 0
    audio, sr = read_audio(out)
    assert sr == 16000 and audio.shape[0] == 1
    assert sorted(p.name for p in (tmp_path / "stems").glob("*.wav")) == [
        "01-piano-voice1.wav", "02-piano-voice2.wav", "03-piano-voice3.wav", "04-bass.wav"]
    assert main(["render", str(tmp_path), "-o", str(tmp_path / "x"), "--synth", "ddsp:tiny"]) == 2
    assert main(["render", str(midi), "-o", str(out), "--synth", "nope"]) == 2
