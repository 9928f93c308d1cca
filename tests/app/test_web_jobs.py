"""The web studio's plumbing without a browser: cancel flags, per-model gates, the workspace, result
files, and the page built over a Studio with a widget for every setting."""

from __future__ import annotations

import threading
import time

import pytest

from cadenza.app.web.jobs import JobBoard, ModelGates
from cadenza.app.web.results import save_result
from cadenza.app.web.workspace import Workspace
from cadenza.conditioning import Conditioning, Sampling
from cadenza.errors import Cancelled
from cadenza.generators.base import Callbacks


def test_cancel_reaches_only_the_running_job_of_that_session():
    board = JobBoard()
    assert board.cancel("a") is False
    with board.job("a") as a, board.job("b") as b:
        assert board.cancel("a") is True
        assert a.is_set() and not b.is_set()
    assert board.cancel("a") is False


def test_cancel_really_stops_the_engine(studio):
    board = JobBoard()
    with board.job("s") as stop:
        steps = []

        def progress(done, total):
            steps.append(done)
            if done == 5:
                board.cancel("s")

        with pytest.raises(Cancelled):
            studio.generate("tiny-remi", Conditioning(bars=64), Sampling(seed=1), Callbacks(progress, stop.is_set))
    assert max(steps) == 5


def test_model_gate_limits_and_can_be_cancelled_while_waiting():
    gates = ModelGates(limit=1)
    inside = threading.Event()
    release = threading.Event()

    def hold():
        with gates.hold("m", lambda: False):
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    assert inside.wait(5)
    told = []
    started = time.monotonic()
    with pytest.raises(Cancelled, match="waiting"):
        with gates.hold("m", lambda: time.monotonic() - started > 0.5, lambda: told.append(True)):
            pass
    assert told == [True]
    with gates.hold("other", lambda: False):  # another model is not blocked
        pass
    release.set()
    worker.join()
    with gates.hold("m", lambda: False):
        pass


def test_workspace_keeps_the_latest_job_and_cleans_up(tmp_path):
    ws = Workspace(parent=str(tmp_path))
    first = ws.new_job("abc")
    (first / "x.mid").write_bytes(b"x")
    second = ws.new_job("abc")
    assert not first.exists() and second.is_dir() and ws.latest_job("abc") == second
    evil = ws.new_job("../../etc")
    assert ws.root in evil.parents
    ws.drop_session("abc")
    assert not second.exists()
    ws.close()
    assert not ws.root.exists()


def test_result_files_for_midi(studio, tmp_path):
    out = studio.generate("tiny-remi", Conditioning(bars=2, key="G major"), Sampling(seed=3))[0]
    result = save_result(studio, out, tmp_path, 0)
    assert result.kind == "midi" and result.seed == 3
    assert sorted(p.suffix for p in result.downloads) == [".flac", ".json", ".mid", ".wav"]
    assert all(p.is_file() and p.parent == tmp_path for p in result.downloads)
    assert result.image.read_bytes()[:4] == b"\x89PNG"
    assert '"seed": 3' in result.provenance_json and "G major" in result.summary


def test_page_builds_over_a_studio(studio):
    gr = pytest.importorskip("gradio")
    from cadenza.app.web import build_app

    app = build_app(studio)
    try:
        assert isinstance(app.blocks, gr.Blocks)
        ids = {getattr(b, "elem_id", None) for b in app.blocks.blocks.values()}
        assert {"model", "key", "bars", "generate", "cancel", "status", "result-audio-0", "result-files-0",
                "batch-files"} <= ids
        assert "transfer-source" not in ids  # no ddsp model installed: no timbre-transfer tab
    finally:
        app.close()
    assert not app.context.workspace.root.exists()
