"""The web studio holds its size (issue 19): a replaced job's results go, with the server's copies of them;
a visitor who leaves takes its files, uploads and page state along; visitors past the cap push out the
one idle longest; and after the server is stopped its temp folder is empty."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadenza.app.web.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def _copies_into(served: Path):
    """A stand-in for the server's copies: ``served/<name without suffix>/<name>``."""
    return lambda path: [served / path.stem / path.name]


def _serve(workspace: Workspace, path: Path) -> Path:
    [copy] = workspace.copies_of(path)
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(path.read_bytes())
    return copy


def test_a_replaced_job_takes_its_served_copies_along(tmp_path):
    ws = Workspace(str(tmp_path))
    ws.copies_of = _copies_into(ws.served)
    removed: list[Path] = []
    ws.on_removed = removed.extend
    first = ws.new_job("ann")
    (first / "tune-1.wav").write_bytes(b"one")
    copy = _serve(ws, first / "tune-1.wav")
    shared = ws.new_job("bob")  # another visitor made the same file: they share the server's copy
    (shared / "same.wav").write_bytes(b"same")
    (first / "same.wav").write_bytes(b"same")
    same_copy = _serve(ws, first / "same.wav")
    second = ws.new_job("ann")
    assert not first.exists() and second.is_dir()
    assert not copy.exists() and not copy.parent.exists() and removed == [copy]
    assert same_copy.exists()  # still on bob's page
    ws.drop_session("bob")
    assert not same_copy.exists() and not shared.exists()
    ws.close()
    assert not ws.root.exists()


def test_uploads_go_with_the_visitor_that_used_them(tmp_path):
    ws = Workspace(str(tmp_path))
    mine, both = ws.served / "h1" / "take.wav", ws.served / "h2" / "hum.wav"
    for path in (mine, both):
        path.parent.mkdir()
        path.write_bytes(b"x" * 1000)
    assert ws.add_upload("ann", mine) == 1000
    assert ws.add_upload("ann", mine) == 1000  # the same file counts once
    assert ws.add_upload("ann", both, limit_bytes=1500) == 2000  # over the limit: refused, not counted
    assert ws.add_upload("ann", both, limit_bytes=2000) == 2000
    assert ws.add_upload("bob", both) == 1000
    ws.drop_session("ann")
    assert not mine.exists() and both.exists()  # bob still uses it
    stray, fresh = ws.served / "tmpabc123", ws.served / "tmpdef456"  # uploads their clients gave up on
    stray.write_bytes(b"half")
    fresh.write_bytes(b"still coming")
    os.utime(stray, (time.time() - 7200, time.time() - 7200))
    ws.drop_session("bob")
    assert not both.exists() and not stray.exists() and fresh.exists()
    ws.close()


def test_past_the_cap_the_visitor_idle_longest_is_forgotten(tmp_path):
    ws = Workspace(str(tmp_path), max_sessions=2)
    jobs = {name: ws.new_job(name) for name in ("a", "b")}
    ws.new_job("a")  # a is busy again; b is now the one idle longest
    ws.new_job("c")
    assert ws.session_count() == 2 and not jobs["b"].parent.exists() and ws.latest_job("a") is not None
    ws.close()


@pytest.fixture(scope="module")
def served(tiny_root):
    pytest.importorskip("gradio")
    pytest.importorskip("fluidsynth", reason="results are rendered with FluidSynth")
    from cadenza.app.web import launch
    from cadenza.studio import Studio

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = os.environ.get("GRADIO_TEMP_DIR")
    app = launch(Studio(model_dirs=[tiny_root]), port=port, block=False)
    yield app, port
    app.close()
    assert not app.context.workspace.root.exists() and os.environ.get("GRADIO_TEMP_DIR") == before


def _files(folder: Path) -> set[Path]:
    """The files under ``folder`` now. The server deletes folders while this walks them (that is what the
    tests wait for): a folder gone mid-walk is walked again."""
    for _ in range(50):
        try:
            return {p for p in folder.rglob("*") if p.is_file()}
        except FileNotFoundError:
            continue
    raise AssertionError(f"{folder} kept changing under the walk")


def test_results_replaced_or_left_behind_are_deleted_on_the_server(served):
    """Through the server: Generate twice in one page, then close it (its heartbeat ends)."""
    import httpx

    from benchmarks.web_load import GenerateCall, generate, hold_heartbeat

    app, port = served
    workspace = app.context.workspace
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        call = GenerateCall(http.get("/config").json())
        heartbeat = hold_heartbeat(port, "visitor1")
        first = generate(http, call, "visitor1", call.data(1, model="tiny-remi", bars="1"))
        assert first is not None and first[0].startswith("Done"), first
        shown = _files(workspace.served)
        audio = http.get(call.audio_url(first))
        assert audio.status_code == 200 and shown  # the page got its copies from the app's own folder
        second = generate(http, call, "visitor1", call.data(2, model="tiny-remi", bars="1"))
        assert second is not None and second[0].startswith("Done")
        now = _files(workspace.served)
        assert now and not (shown & now)  # the first results' copies went with their job
        assert http.get(call.audio_url(first)).status_code in (403, 404)
        assert len(list((workspace.sessions / "visitor1").iterdir())) == 1
        heartbeat.close()  # the visitor leaves
        deadline = time.monotonic() + 120  # generous: how soon a leaving visitor is noticed depends on load
        while (_files(workspace.root) or "visitor1" in app.blocks.state_holder) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not _files(workspace.root)
    assert "visitor1" not in app.blocks.state_holder  # Gradio's copy of the page state went too


@pytest.mark.slow
def test_the_temp_folder_is_empty_after_the_server_is_stopped(tmp_path):
    """``cadenza app`` in its own process, its temp folder pointed into ``tmp_path``: a visit that uploads
    a file and generates, then SIGTERM (a service manager's stop): nothing is left."""
    pytest.importorskip("gradio")
    pytest.importorskip("fluidsynth", reason="results are rendered with FluidSynth")
    import httpx

    from benchmarks.web_load import GenerateCall, free_port, generate, start_server, stop_server, wait_until_up

    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    server = start_server(port, temp)
    try:
        base = f"http://127.0.0.1:{port}"
        call = GenerateCall(wait_until_up(base, server))
        with httpx.Client(base_url=base, timeout=120) as http:
            upload = http.post("/gradio_api/upload", files={"files": ("take.mid", b"MThd" * 64)})
            assert upload.status_code == 200 and Path(upload.json()[0]).is_relative_to(temp)
            done = generate(http, call, "visitor1", call.data(1, bars="1"))
            assert done is not None and done[0].startswith("Done") and http.get(call.audio_url(done)).status_code == 200
        assert _files(temp)  # the visit left files while the server runs
    finally:
        if server.poll() is None:
            stop_server(server)
    assert server.returncode == 0
    assert not _files(temp), sorted(map(str, _files(temp)))[:5]
