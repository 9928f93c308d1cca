"""`Studio.remake` and `cadenza remake`: every family and every render mode made again from its sidecar,
byte for byte; changed or missing inputs and other weights refused with a clear error.

The shipped small models are used (they are the defaults a user remakes), each at its shortest: 1-2 s of
audio, 2 bars, a few denoising steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cadenza import Conditioning, Sampling, Studio
from cadenza.checkpoints import REPO_CHECKPOINTS
from cadenza.errors import CheckpointError, CorruptInput, InputNotFound


@pytest.fixture(scope="module")
def studio() -> Studio:
    return Studio(model_dirs=[REPO_CHECKPOINTS])


def needs_fluidsynth() -> None:
    from cadenza.errors import MissingDependency
    from cadenza.render.fluidsynth import check_available

    try:
        check_available()
    except MissingDependency as exc:
        pytest.skip(str(exc))


def assert_remade(studio: Studio, path: Path, tmp_path: Path) -> None:
    """``path``'s sidecar makes ``path`` again, byte for byte."""
    again = tmp_path / f"again-{path.name}"
    studio.remake(f"{path}.json", out=again)
    assert again.read_bytes() == path.read_bytes(), path.name


def save_all(outputs, tmp_path: Path, stem: str, suffix: str) -> list[Path]:
    return [o.save(tmp_path / f"{stem}-{o.provenance.sample_index}{suffix}") for o in outputs]


@pytest.mark.parametrize(("model", "conditioning", "sampling"), [
    ("remi-folk-small", Conditioning(bars=2, key="D major"), Sampling(num_samples=2)),  # a drawn seed
    ("musicgen-folk-small", Conditioning(text="a jig on a fiddle", duration_s=1.0), Sampling(seed=5, num_samples=2)),
    ("diffusion-folk-small", Conditioning(text="a slow air on a flute", duration_s=1.0),
     Sampling(seed=7, steps=3, num_samples=2)),
], ids=["symbolic", "codec_lm", "diffusion"])
def test_every_generating_family_remakes_each_sample_byte_for_byte(studio, tmp_path, model, conditioning, sampling):
    outputs = studio.generate(model, conditioning, sampling)
    suffix = ".mid" if model.startswith("remi") else ".wav"
    paths = save_all(outputs, tmp_path, "out", suffix)
    for output, path in zip(outputs, paths, strict=True):
        sidecar = json.loads(Path(f"{path}.json").read_text())
        assert sidecar["sampling"]["seed"] is not None  # a drawn seed is written into the call's sampling
        assert sidecar["sampling"]["num_samples"] == 2 and sidecar["seed"] == output.provenance.seed
    assert_remade(studio, paths[1], tmp_path)  # the second sample of the call, not only the first


def test_a_score_rendered_with_fluidsynth_remakes_from_the_generated_and_from_a_file(studio, tmp_path):
    needs_fluidsynth()
    score = studio.generate("remi-folk-small", Conditioning(bars=2), Sampling(seed=1))[0]
    played = studio.render(score).save(tmp_path / "tune.wav")  # generated, then played
    record = json.loads(Path(f"{played}.json").read_text())["notes"]
    assert record["rendered_with"] == "fluidsynth" and len(record["soundfont"]["sha256"]) == 64
    assert_remade(studio, played, tmp_path)
    midi = score.save(tmp_path / "tune.mid")
    from_file = studio.render(midi, reverb=False, normalize_lufs=-18.0).save(tmp_path / "file.flac")
    assert_remade(studio, from_file, tmp_path)


def test_a_ddsp_rendering_and_each_of_its_stems_remake(studio, tmp_path, midi_file):
    midi = midi_file("two.mid", notes=[(0, 480, 67, 90), (480, 480, 69, 90), (0, 960, 62, 70)], qpm=120)
    audio = studio.render(midi, synth="ddsp:violin", seed=3)
    mix = audio.save(tmp_path / "mix.wav")
    stems = [stem.save(tmp_path / f"stem-{i}.wav") for i, stem in enumerate(audio.stems)]
    assert len(stems) == 2
    assert_remade(studio, mix, tmp_path)
    assert_remade(studio, stems[1], tmp_path)


def test_a_timbre_transfer_remakes(studio, tmp_path):
    from cadenza.fileio.audio import write_audio

    rate = 16000
    t = np.arange(int(1.5 * rate)) / rate
    voice = (0.3 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, 4 * t)).astype(np.float32)[None]
    write_audio(tmp_path / "voice.wav", voice, rate)
    out = studio.transfer(tmp_path / "voice.wav", "violin").save(tmp_path / "violin.wav")
    record = json.loads(Path(f"{out}.json").read_text())
    assert record["inputs"]["source_audio"]["path"] == str(tmp_path / "voice.wav")
    assert_remade(studio, out, tmp_path)


def test_a_changed_or_missing_prompt_is_refused(studio, tmp_path, midi_file):
    prompt = midi_file("prompt.mid", notes=[(0, 480, 62, 90), (480, 480, 66, 90), (960, 960, 69, 90)], qpm=100)
    out = studio.generate("remi-folk-small", Conditioning(prompt=str(prompt), bars=1), Sampling(seed=2))[0]
    path = out.save(tmp_path / "more.mid")
    recorded = json.loads(Path(f"{path}.json").read_text())["inputs"]["prompt"]
    assert recorded["path"] == str(prompt) and len(recorded["sha256"]) == 64
    assert_remade(studio, path, tmp_path)
    midi_file("prompt.mid", notes=[(0, 480, 60, 90)])  # another file under the same name
    with pytest.raises(CorruptInput, match="prompt file .* changed"):
        studio.remake(f"{path}.json")
    prompt.unlink()
    with pytest.raises(InputNotFound, match="prompt file .* is missing"):
        studio.remake(f"{path}.json")


def test_other_weights_and_broken_sidecars_are_refused(studio, tmp_path):
    out = studio.generate("remi-folk-small", Conditioning(bars=1), Sampling(seed=0))[0].save(tmp_path / "a.mid")
    sidecar = json.loads(Path(f"{out}.json").read_text())
    Path(f"{out}.json").write_text(json.dumps({**sidecar, "checkpoint_sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="not the one this output was made with"):
        studio.remake(out)  # the output's own path finds its sidecar
    (tmp_path / "b.mid.json").write_text("[1, 2]")
    with pytest.raises(CorruptInput, match="not a sidecar"):
        studio.remake(tmp_path / "b.mid.json")
    with pytest.raises(InputNotFound, match="no sidecar"):
        studio.remake(tmp_path / "none.mid")


def test_the_cli_checks_puts_back_and_writes(tmp_path, capsys, monkeypatch):
    from cadenza.app.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["generate", "remi-folk-small", "--bars", "2", "--samples", "2", "--seed", "4", "-o", "t.mid"]) == 0
    printed = capsys.readouterr().out
    assert "seed 4, sample 2 of 2" in printed  # not "seed 4" as if that seed alone made it
    assert main(["remake", "t-2.mid.json"]) == 0
    assert "remade identical" in capsys.readouterr().out
    kept = Path("t-2.mid").read_bytes()
    Path("t-2.mid").unlink()
    assert main(["remake", "t-2.mid.json", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == "t-2.mid" and Path("t-2.mid").read_bytes() == kept
    assert main(["remake", "t-2.mid.json", "-o", "copy.mid"]) == 0
    assert Path("copy.mid").read_bytes() == kept and "identical to" in capsys.readouterr().out
    shutil.copy("t-1.mid", "t-2.mid")  # the sidecar no longer describes the file beside it
    assert main(["remake", "t-2.mid.json"]) == 1
    assert "differs" in capsys.readouterr().out
    assert main(["remake", "missing.json"]) == 2
    assert "no sidecar" in capsys.readouterr().err
