"""`cadenza generate` on a MusicGen folder, and `cadenza pull` with a fake downloader (never the network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from tiny_musicgen import SAMPLE_RATE, write_tone

from cadenza.app import cli
from cadenza.errors import CheckpointError
from cadenza.generators.codec_lm.release_dir import pull
from cadenza.studio import Studio


def test_generate_text_melody_prompt_through_cli(release_dirs, tmp_path, midi_file, capsys):
    out = tmp_path / "x.wav"
    assert cli.main(["generate", str(release_dirs["mono"]), "--text", "bright brass", "--duration", "2",
                     "--seed", "4", "-o", str(out)]) == 0
    audio, rate = sf.read(out)
    assert rate == SAMPLE_RATE and len(audio) == 2 * SAMPLE_RATE
    assert json.loads(Path(f"{out}.json").read_text())["seed"] == 4

    tune = midi_file("tune.mid", notes=[(0, 960, 69, 90), (960, 960, 72, 90)], qpm=120)
    melody_out = tmp_path / "m.wav"
    assert cli.main(["generate", str(release_dirs["melody"]), "--text", "choir", "--melody", str(tune),
                     "--duration", "1", "-o", str(melody_out)]) == 0
    assert sf.info(melody_out).frames == SAMPLE_RATE

    clip = write_tone(tmp_path / "clip.wav", seconds=0.5)
    prompt_out = tmp_path / "p.wav"
    assert cli.main(["generate", str(release_dirs["mono"]), "--prompt", str(clip), "--duration", "1.2",
                     "--samples", "2", "-o", str(prompt_out)]) == 0
    assert sf.info(tmp_path / "p-2.wav").frames == int(1.2 * SAMPLE_RATE)

    assert cli.main(["generate", str(release_dirs["mono"]), "--melody", str(tune), "-o", str(out)]) == 2
    assert "cannot honour --melody (MIDI)" in capsys.readouterr().err


def _fake_downloader(source: Path, log: list[str]):
    def download(repo: str, filename: str, target: Path) -> Path:
        log.append(f"{repo}/{filename}")
        target.mkdir(parents=True, exist_ok=True)
        dest = target / filename
        if (source / filename).is_file():
            shutil.copyfile(source / filename, dest)
        else:
            dest.write_text("{}")  # T5 files: stand-ins, never loaded here
        return dest
    return download


def test_pull_writes_a_pinned_manifest(release_dirs, tmp_path):
    fetched: list[str] = []
    pull("musicgen-small", root=tmp_path, downloader=_fake_downloader(release_dirs["mono"], fetched), log=lambda _: None)
    assert fetched == ["facebook/musicgen-small/state_dict.bin", "facebook/musicgen-small/compression_state_dict.bin"]
    manifest = json.loads((tmp_path / "musicgen-small" / "manifest.json").read_text())
    assert manifest["family"] == "codec_lm" and manifest["config"] == {"format": "audiocraft"}
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    assert manifest["made_by"]["command"] == "cadenza pull musicgen-small"
    studio = Studio(model_dirs=[tmp_path])
    assert "musicgen-small" in [m.name for m in studio.models()]
    from cadenza import Conditioning, Sampling

    out = studio.generate("musicgen-small", Conditioning(text="a", duration_s=0.5), Sampling(seed=0))[0]
    assert out.provenance.checkpoint_sha256 == manifest["files"]["state_dict"]["sha256"]
    with pytest.raises(CheckpointError, match="knows no model"):
        pull("musicgen-huge", root=tmp_path, downloader=_fake_downloader(release_dirs["mono"], fetched))

    def offline(repo, filename, target):
        raise OSError("no network")

    with pytest.raises(CheckpointError, match="could not download facebook/musicgen-large/state_dict.bin"):
        pull("musicgen-large", root=tmp_path, downloader=offline, log=lambda _: None)


def test_pull_fetches_the_t5_encoder_a_release_needs(tmp_path):
    """A T5-conditioned release also pulls google-t5/t5-base into <name>/t5/, pinned in the manifest."""
    import torch
    from omegaconf import OmegaConf

    source = tmp_path / "src"
    source.mkdir()
    cfg = OmegaConf.create({"conditioners": {"description": {"model": "t5", "t5": {"name": "t5-base"}}},
                            "dataset": {"segment_duration": 30.0}})
    torch.save({"best_state": {}, "xp.cfg": OmegaConf.to_yaml(cfg)}, source / "state_dict.bin")
    torch.save({"best_state": {}, "xp.cfg": "{}"}, source / "compression_state_dict.bin")
    fetched: list[str] = []
    spec = pull("musicgen-medium", root=tmp_path / "cache", downloader=_fake_downloader(source, fetched), log=lambda _: None)
    assert "google-t5/t5-base/spiece.model" in fetched
    assert (spec.directory / "t5" / "config.json").is_file()
    assert spec.files["t5_config"]["path"] == "t5/config.json"
