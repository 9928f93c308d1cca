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


def _fake_hub(source: Path, cache: Path, log: list[str]):
    """A stand-in for huggingface_hub's snapshot_download: the files of ``source`` matching the patterns
    copied into ``cache/<repo>/snapshots/<revision>``; T5 files are stand-ins, never loaded here."""

    def snapshot(repo: str, revision: str | None, patterns: tuple[str, ...]) -> Path:
        log.append(f"{repo}@{revision}")
        folder = cache / repo.replace("/", "--") / "snapshots" / (revision or "main0123")
        folder.mkdir(parents=True, exist_ok=True)
        for name in patterns:
            if (source / name).is_file():
                shutil.copyfile(source / name, folder / name)
            elif name.endswith((".json", ".model", ".safetensors")) and "t5" in repo:
                (folder / name).write_text("{}")
        return folder

    return snapshot


def test_pull_links_the_files_of_the_hugging_face_cache_at_a_pinned_revision(release_dirs, tmp_path):
    from cadenza.generators.codec_lm.release_dir import PULLABLE

    fetched: list[str] = []
    cache = tmp_path / "hf"
    spec = pull("musicgen-small", root=tmp_path, downloader=_fake_hub(release_dirs["mono"], cache, fetched),
                log=lambda _: None)
    assert fetched == [f"facebook/musicgen-small@{PULLABLE['musicgen-small'].revision}"]
    assert len(PULLABLE["musicgen-small"].revision) == 40  # a commit, not a branch
    weights = tmp_path / "musicgen-small" / "state_dict.bin"
    assert weights.is_symlink() and weights.resolve().is_relative_to(cache.resolve())  # shared, not copied
    manifest = json.loads((tmp_path / "musicgen-small" / "manifest.json").read_text())
    assert manifest["family"] == "codec_lm" and manifest["config"] == {"format": "audiocraft"}
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    assert manifest["made_by"]["command"] == "cadenza pull musicgen-small"
    assert manifest["made_by"]["source"]["revision"] == PULLABLE["musicgen-small"].revision
    studio = Studio(model_dirs=[tmp_path])
    assert "musicgen-small" in [m.name for m in studio.models()]
    from cadenza import Conditioning, Sampling

    out = studio.generate("musicgen-small", Conditioning(text="a", duration_s=0.5), Sampling(seed=0))[0]
    assert out.provenance.checkpoint_sha256 == manifest["files"]["state_dict"]["sha256"] == spec.sha256
    with pytest.raises(CheckpointError, match="knows no model"):
        pull("musicgen-huge", root=tmp_path, downloader=_fake_hub(release_dirs["mono"], cache, fetched))


def test_pull_without_network_fails_at_once_in_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """No retries, no half-made folder, no lock file: one line saying why (huggingface_hub is never called)."""
    from cadenza import hub
    from cadenza.generators.codec_lm import release_dir

    def never(*args, **kwargs):
        raise AssertionError("the hub was called although the network check failed")

    monkeypatch.setattr(hub, "hf_snapshot", never)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set"):
        release_dir.pull("musicgen-small", root=tmp_path, log=lambda _: None)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    tried = []

    def unreachable(host, port, timeout_s):
        tried.append((host, port, timeout_s))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(hub, "_connect", unreachable)
    assert cli.main(["pull", "musicgen-small", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert tried == [("huggingface.co", 443, hub.CHECK_TIMEOUT_S)]  # checked once, a few seconds at most
    assert err.count("\n") == 1 and "cannot reach huggingface.co" in err and "needs the network" in err
    assert list(tmp_path.iterdir()) == []  # no model folder, no .lock


def test_a_missing_file_in_the_snapshot_is_one_clear_error(release_dirs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="has no state_dict.bin"):
        pull("musicgen-large", root=tmp_path / "models", downloader=_fake_hub(empty, tmp_path / "hf", []),
             log=lambda _: None)
    assert not (tmp_path / "models").exists()


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
    spec = pull("musicgen-medium", root=tmp_path / "cache", downloader=_fake_hub(source, tmp_path / "hf", fetched),
                log=lambda _: None)
    assert fetched[1] == "google-t5/t5-base@a9723ea7f1b39c1eae772870f3b547bf6ef7e6c1"
    assert (spec.directory / "t5" / "config.json").is_file() and (spec.directory / "t5" / "spiece.model").is_symlink()
    assert spec.files["t5_config"]["path"] == "t5/config.json"
