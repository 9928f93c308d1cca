"""The pull's network check and its links into the Hugging Face cache (no network is ever used)."""

from __future__ import annotations

import socket
import threading

import pytest

from cadenza import hub
from cadenza.errors import CheckpointError


@pytest.fixture(autouse=True)
def online_settings(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


def test_the_check_asks_the_hub_host_once(monkeypatch):
    seen = []
    monkeypatch.setattr(hub, "_connect", lambda host, port, timeout_s: seen.append((host, port)))
    hub.require_network()
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    hub.require_network()
    assert seen == [("huggingface.co", 443), ("mirror.example", 8080)]


@pytest.mark.parametrize("value", ["1", "true", "ON"])
def test_offline_mode_is_refused_without_trying(monkeypatch, value):
    monkeypatch.setattr(hub, "_connect", lambda *a: pytest.fail("no connection may be tried offline"))
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set"):
        hub.require_network()


def test_a_hanging_name_lookup_is_cut_short(monkeypatch):
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)  # a lookup that never answers (until the test ends)
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        with pytest.raises(CheckpointError, match="cannot reach huggingface.co .*no answer in 0.05 s"):
            hub.require_network(timeout_s=0.05)
    finally:
        release.set()


def test_links_point_into_the_cache_and_never_replace_a_folder(tmp_path):
    snapshot = tmp_path / "hf" / "snap"
    (snapshot / "sub").mkdir(parents=True)
    (snapshot / "a.bin").write_bytes(b"a")
    (snapshot / "sub" / "b.json").write_text("{}")
    target = tmp_path / "model"
    hub.link_files(snapshot, hub.snapshot_files(snapshot), target)
    assert (target / "sub" / "b.json").is_symlink() and (target / "a.bin").read_bytes() == b"a"
    hub.link_files(snapshot, ["a.bin"], target)  # again: replaced in place
    (target / "folder").mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        hub.link(snapshot, target / "folder")
    assert sorted(p.name for p in target.iterdir()) == ["a.bin", "folder", "sub"]  # no temporary links left
