"""Manifests: write/read round trip, sha256 verification, malformed folders, safetensors only."""

from __future__ import annotations

import json

import pytest

from cadenza.checkpoints import MANIFEST, discover, read_manifest, sha256_of, write_manifest
from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.errors import CheckpointError
from cadenza.studio import Studio


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_write_read_roundtrip(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"weights")
    (tmp_path / "tok.json").write_text("{}")
    spec = write_manifest(tmp_path, name="demo", family="symbolic", files={"weights": "w.safetensors", "tokenizer": "tok.json"},
                          config={"model": {"dim": 8}}, capabilities=[Capability.KEY, Capability.BARS], license="MIT",
                          description="d", made_by={"recipe": "r"}, metrics={"val_loss": 1.5})
    again = read_manifest(tmp_path)
    assert again == spec
    assert again.name == "demo" and again.family == "symbolic"
    assert again.capabilities == frozenset({Capability.KEY, Capability.BARS})
    assert again.files["weights"]["sha256"] == sha256_of(tmp_path / "w.safetensors")
    assert again.sha256 == again.files["weights"]["sha256"]
    assert again.path("tokenizer") == tmp_path / "tok.json"
    assert again.config == {"model": {"dim": 8}} and again.metrics == {"val_loss": 1.5} and again.license == "MIT"
    again.verify()  # untouched files pass
    with pytest.raises(CheckpointError, match="no 'vocoder' file"):
        again.path("vocoder")


def test_sha256_of_matches_hashlib(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"x" * 3_000_000)  # more than one read block
    assert sha256_of(tmp_path / "f") == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_tampered_weights_fail_verify_and_generate(tmp_path, copy_tiny):
    directory = copy_tiny(tmp_path)
    _flip_one_byte(directory / "model.safetensors")
    spec = read_manifest(directory)
    with pytest.raises(CheckpointError, match="corrupt or was replaced"):
        spec.verify()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Studio(model_dirs=[tmp_path]).generate("tiny-remi", Conditioning(bars=1), Sampling(seed=0))


def test_tampered_tokenizer_fails_verify(tmp_path, copy_tiny):
    directory = copy_tiny(tmp_path)
    with open(directory / "tokenizer.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        read_manifest(directory).verify()


def test_missing_file_fails_verify(tmp_path, copy_tiny):
    directory = copy_tiny(tmp_path)
    (directory / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        read_manifest(directory).verify()


def test_missing_manifest_raises(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("content, reason", [
    ("{not json", "cannot read"),
    (json.dumps({"family": "symbolic", "files": {}}), "malformed"),  # no license
    (json.dumps({"family": "symbolic", "license": "x", "files": {"weights": {"path": "w"}}}), "malformed"),  # no sha256
    (json.dumps({"family": "symbolic", "license": "x", "files": {}, "capabilities": ["telepathy"]}), "malformed"),
    (json.dumps({"family": 7, "license": "x", "files": {}}), "must name a generator family"),
    (json.dumps(["a", "list"]), "malformed"),
])
def test_malformed_manifest_raises(tmp_path, content, reason):
    (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(CheckpointError, match=reason):
        read_manifest(tmp_path)


def test_any_family_is_read_and_studio_says_which_it_knows(tmp_path, copy_tiny):
    """Which families exist is the registry's business: a manifest of another family reads, is left out of
    the model list, and asking for it by name says which families this installation has."""
    copy_tiny(tmp_path, "good-one")
    (tmp_path / "theremin-1").mkdir()
    (tmp_path / "theremin-1" / MANIFEST).write_text(json.dumps({"family": "theremin", "license": "x", "files": {}}))
    assert read_manifest(tmp_path / "theremin-1").family == "theremin"
    studio = Studio(model_dirs=[tmp_path])
    assert "good-one" in studio.specs() and "theremin-1" not in studio.specs()
    assert "theremin-1" not in {m.name for m in studio.models()}
    with pytest.raises(CheckpointError, match=r"theremin-1.*unknown family 'theremin'.*symbolic, codec_lm"):
        studio.spec("theremin-1")


def test_discover_skips_broken_but_spec_says_why(tmp_path, copy_tiny):
    copy_tiny(tmp_path, "good-one")
    broken = tmp_path / "broken-one"
    broken.mkdir()
    (broken / MANIFEST).write_text("{oops")
    found = discover([tmp_path, tmp_path / "does-not-exist"])
    assert list(found) == ["good-one"]
    studio = Studio(model_dirs=[tmp_path])
    assert "good-one" in studio.specs() and "broken-one" not in studio.specs()
    with pytest.raises(CheckpointError, match=r"broken-one.*manifest\.json"):
        studio.spec("broken-one")


def test_discover_first_directory_wins_a_name(tmp_path, copy_tiny):
    first, second = tmp_path / "a", tmp_path / "b"
    copy_tiny(first, "same")
    copy_tiny(second, "same")
    assert discover([first, second])["same"].directory == first / "same"
    assert discover([second, first])["same"].directory == second / "same"


def test_non_safetensors_weights_are_refused(tmp_path, copy_tiny):
    directory = copy_tiny(tmp_path)
    (directory / "model.safetensors").rename(directory / "model.pt")
    manifest = json.loads((directory / MANIFEST).read_text())
    write_manifest(directory, name="tiny-remi", family="symbolic",
                   files={"weights": "model.pt", "tokenizer": "tokenizer.json"}, config=manifest["config"],
                   capabilities=[Capability(c) for c in manifest["capabilities"]], license="x")
    spec = read_manifest(directory)
    spec.verify()  # hashes match: the refusal is about the format
    with pytest.raises(CheckpointError, match="only .safetensors"):
        spec.load_safetensors()
    with pytest.raises(CheckpointError, match="only .safetensors"):
        Studio(model_dirs=[tmp_path]).load("tiny-remi")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, copy_tiny):
    directory = copy_tiny(tmp_path)
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["config"]["model"]["n_layers"] = 3  # the file holds 2 layers
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="do not fit the config"):
        Studio(model_dirs=[tmp_path]).load("tiny-remi")
