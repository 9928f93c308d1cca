"""The DDSP recipe end to end on a tiny corpus: render melodies with FluidSynth (f0 from the notes), train
a few steps, resume, export a checkpoint the Studio loads; and a folder of recordings as data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import symusic

from cadenza.app.cli import main
from cadenza.generators.ddsp.data import f0_from_notes, melody_notes, prepare_folder, prepare_instrument
from cadenza.generators.ddsp.features import HOP
from cadenza.generators.ddsp.train import TrainConfig, train
from cadenza.fileio.audio import write_audio
from cadenza.studio import Studio

from ddsp_fixtures import TINY_CONFIG, sung_tone


def _tune(seed: int, chord: bool = False) -> symusic.Score:
    rng = np.random.default_rng(seed)
    score = symusic.Score(480)
    track = symusic.Track("melody", program=0)
    t = 0
    for _ in range(24):
        pitch = int(rng.integers(62, 80))
        track.notes.append(symusic.Note(t, 240, pitch, 90))
        if chord:
            track.notes.append(symusic.Note(t, 240, pitch - 4, 90))
        t += 240
    score.tracks.append(track)
    return score


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddsp_corpus")
    rows = ["path\tcollection\tmusic21_source\tscore_index\tmidi_notes\tseconds\tlicense"]
    for i, (collection, chord) in enumerate([("oneills1850", False), ("ryansMammoth", False), ("airdsAirs", True),
                                             ("airdsAirs", False), ("bach", False)]):
        rel = f"{collection}/tune{i}.mid"
        (root / "midi" / collection).mkdir(parents=True, exist_ok=True)
        _tune(i, chord).dump_midi(str(root / "midi" / rel))
        rows.append(f"{rel}\t{collection}\tx\t0\t24\t12.0\tfree")
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_f0_from_notes_holds_through_rests():
    notes = np.array([[0.1, 0.3, 69.0], [0.5, 0.6, 81.0]])
    f0, sounding = f0_from_notes(notes, 70)
    assert f0[0] == pytest.approx(440.0) and not sounding[0]  # before the first note: its pitch, silent
    assert f0[20] == pytest.approx(440.0) and sounding[20]
    assert f0[40] == pytest.approx(440.0) and not sounding[40]  # the rest holds the last pitch (release)
    assert f0[55] == pytest.approx(880.0) and sounding[55]


def test_prepare_train_resume_export(corpus, tmp_path):
    assert melody_notes(corpus / "midi/airdsAirs/tune2.mid") is None  # chords are not a melody
    data = tmp_path / "data"
    info = prepare_instrument("flute", corpus, data, minutes=0.3, seed=1)
    assert info["program"] == 73 and len(info["pieces"]) == 3  # the bach file is not a folk tune
    audio, f0 = np.load(data / "audio.npy"), np.load(data / "f0.npy")
    assert audio.shape[0] == f0.shape[0] * HOP == np.load(data / "loudness.npy").shape[0] * HOP
    assert np.abs(audio).max() == pytest.approx(0.89, abs=1e-3)
    pitch = 69 + 12 * np.log2(f0[np.load(data / "voiced.npy")] / 440)
    assert pitch.min() >= 60 and pitch.max() <= 91  # moved into the flute's range

    run = tmp_path / "run"
    config = TrainConfig(str(data), str(run), model=TINY_CONFIG, batch=2, crop_frames=50, max_steps=3, val_crops=2)
    first = train(config)
    assert first["step"] == 3 and np.isfinite(first["val_loss"])
    resumed = train(TrainConfig(**{**config.__dict__, "max_steps": 5}))
    assert resumed["step"] == 5
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 5

    models = tmp_path / "models"
    assert main(["train", "ddsp", "--instrument", "flute", "--data", str(data), "--run", str(run),
                 "--export", str(models / "ddsp-flute")]) == 0
    manifest = json.loads((models / "ddsp-flute" / "manifest.json").read_text())
    assert manifest["family"] == "ddsp" and manifest["capabilities"] == ["source_audio"]
    assert manifest["metrics"]["steps"] == 5 and manifest["made_by"]["data"]["gm_program"] == 73
    assert (models / "ddsp-flute" / "model.safetensors").stat().st_size < 10_000_000
    studio = Studio(model_dirs=[models])
    assert studio.load("ddsp-flute").instrument.stats.pitch_low >= 60


def test_cli_recipe_steps(corpus, tmp_path):
    data, run = tmp_path / "d", tmp_path / "r"
    assert main(["train", "ddsp", "--prepare", "--instrument", "violin", "--corpus", str(corpus), "--data", str(data),
                 "--data-minutes", "0.1"]) == 0
    assert main(["train", "ddsp", "--instrument", "violin", "--data", str(data), "--run", str(run), "--max-steps", "1",
                 "--batch", "1"]) == 0
    assert (run / "state.pt").exists()
    assert main(["train", "ddsp", "--prepare", "--instrument", "kazoo", "--corpus", str(corpus), "--data", str(data)]) == 2


def test_prepare_from_recordings(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    write_audio(folder / "a.wav", sung_tone(22050, seconds=3.0)[None], 22050)
    write_audio(folder / "b.flac", sung_tone(16000, seconds=2.5, hz=300)[None], 16000)
    info = prepare_folder(folder, tmp_path / "data", "voice")
    assert len(info["pieces"]) == 2 and info["f0"] == "torchfcpe"
    assert 0.3 < np.load(tmp_path / "data" / "voiced.npy").mean() < 0.9


def test_folk_tunes_from_a_manifest_without_lengths(tmp_path):
    from cadenza.generators.ddsp.data import folk_tunes

    (tmp_path / "MANIFEST.tsv").write_text("path\tcollection\tlicense\noneills1850/a.mid\toneills1850\tfree\n"
                                           "bach/b.mid\tbach\tfree\n")
    assert folk_tunes(tmp_path) == [tmp_path / "midi" / "oneills1850" / "a.mid"]
