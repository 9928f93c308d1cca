"""MidiOutput / AudioOutput saving with a provenance sidecar; Provenance JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import symusic

from cadenza.errors import InvalidConditioning
from cadenza.outputs import AudioOutput, MidiOutput, Provenance, package_versions


def make_provenance(**overrides) -> Provenance:
    fields = dict(model="tiny-remi", family="symbolic", checkpoint_sha256="ab" * 32,
                  conditioning={"key": "D major", "bars": 4}, sampling={"seed": 7, "temperature": 1.0}, seed=7,
                  notes={"style": "irish"})
    return Provenance(**{**fields, **overrides})


def test_provenance_json_roundtrip():
    p = make_provenance(sample_index=2, timings_s={"generate": 0.5})
    again = Provenance.from_json(p.to_json())
    assert again == p
    assert again.versions["python"] and "torch" in again.versions and "numpy" in again.versions


def test_package_versions_lists_installed_packages():
    versions = package_versions()
    assert {"python", "cadenza", "torch", "symusic", "miditok"} <= set(versions)


def test_midi_save_writes_midi_and_sidecar(tmp_path, score_of):
    score = score_of([(0, 480, 60, 90), (480, 240, 64, 90)], qpm=100)
    out = MidiOutput(score, make_provenance())
    path = out.save(tmp_path / "x.mid")
    assert path == tmp_path / "x.mid"
    loaded = symusic.Score(path)
    assert [(n.time, n.duration, n.pitch) for n in loaded.tracks[0].notes] == [(0, 480, 60), (480, 240, 64)]
    sidecar = json.loads((tmp_path / "x.mid.json").read_text())
    for key in ("model", "checkpoint_sha256", "conditioning", "sampling", "seed", "versions"):
        assert key in sidecar
    assert sidecar["model"] == "tiny-remi" and sidecar["seed"] == 7 and sidecar["checkpoint_sha256"] == "ab" * 32
    assert sidecar["conditioning"] == {"key": "D major", "bars": 4}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mid", "x.mid.json"]


def test_midi_save_without_sidecar(tmp_path, score_of):
    MidiOutput(score_of(), make_provenance()).save(tmp_path / "y.midi", sidecar=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.midi"]


def test_midi_save_unknown_suffix_raises(tmp_path, score_of):
    with pytest.raises(InvalidConditioning, match=r"\.mid"):
        MidiOutput(score_of(), make_provenance()).save(tmp_path / "x.txt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_audio_save_roundtrip(tmp_path, suffix):
    t = np.arange(8000) / 8000
    samples = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 220 * t)]).astype(np.float32)
    out = AudioOutput(samples, 8000, make_provenance(family="diffusion"))
    assert out.duration_s == pytest.approx(1.0)
    path = out.save(tmp_path / f"a{suffix}")
    data, sr = soundfile.read(path, dtype="float32", always_2d=True)
    assert sr == 8000 and data.shape == (8000, 2)
    np.testing.assert_allclose(data.T, samples, atol=1e-3)  # 16-bit quantisation
    assert json.loads((tmp_path / f"a{suffix}.json").read_text())["family"] == "diffusion"


def test_audio_save_unknown_suffix_raises(tmp_path):
    out = AudioOutput(np.zeros((1, 100), np.float32), 8000, make_provenance())
    with pytest.raises(InvalidConditioning):
        out.save(tmp_path / "a.mid")


def test_midi_save_as_audio_says_to_render_first(tmp_path, score_of):
    with pytest.raises(InvalidConditioning, match=r"studio\.render\(output\)\.save\('x\.wav'\)"):
        MidiOutput(score_of(), make_provenance()).save(tmp_path / "x.wav")
    assert list(tmp_path.iterdir()) == []


def test_studio_render_then_save_writes_audio_and_sidecar(tmp_path, score_of, studio):
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    score = score_of([(0, 480, 60, 100), (480, 480, 67, 100)], qpm=120)
    path = studio.render(MidiOutput(score, make_provenance())).save(tmp_path / "x.wav")
    data, sr = soundfile.read(path, always_2d=True)
    assert sr == 44100
    assert data.shape[0] >= sr * 1.0  # two quarter notes at 120 BPM = 1 s, plus a release tail
    assert np.abs(data).max() > 0.01  # not silence
    sidecar = json.loads((tmp_path / "x.wav.json").read_text())
    assert sidecar["notes"]["rendered_with"] == "fluidsynth" and sidecar["notes"]["style"] == "irish"


def test_midi_load_reads_a_file_with_file_provenance(midi_file):
    import hashlib

    path = midi_file("song.mid", notes=[(0, 480, 60, 90), (480, 480, 67, 90)], qpm=100)
    out = MidiOutput.load(path)
    assert [(n.time, n.duration, n.pitch) for n in out.score.tracks[0].notes] == [(0, 480, 60), (480, 480, 67)]
    prov = out.provenance
    assert prov.family == "file" and prov.model == str(path) and prov.seed is None and prov.checkpoint_sha256 is None
    assert prov.notes == {"loaded_from": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert out.duration_s == pytest.approx(1.2)  # two quarter notes at 100 BPM


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"RIFF....WAVEfmt ", "not a MIDI file"),
                                              (b"MThd\x00\x00\x00\x06garbage", "cannot parse")])
def test_midi_load_refuses_corrupt_files(tmp_path, content, message):
    from cadenza.errors import CorruptInput, CorruptMidi

    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    with pytest.raises(CorruptMidi, match=message):
        MidiOutput.load(bad)
    with pytest.raises(CorruptInput, match="not found"):
        MidiOutput.load(tmp_path / "missing.mid")


def test_midi_load_refuses_a_file_without_notes(midi_file):
    from cadenza.errors import CorruptMidi

    with pytest.raises(CorruptMidi, match="no notes"):
        MidiOutput.load(midi_file("silent.mid", notes=[]))


def test_audio_output_has_no_stems_unless_a_renderer_made_them():
    assert AudioOutput(np.zeros((1, 10), np.float32), 8000, make_provenance()).stems == ()
