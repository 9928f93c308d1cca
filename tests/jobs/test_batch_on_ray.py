"""Jobs files on Ray: a local Ray (shared by the session) and a two-node cluster on this machine, started
and stopped by the test, make the same bytes as a run in this process."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cadenza.runners import InlineRunner, RayRunner

pytest.importorskip("ray", reason="Ray is not installed (pip install 'cadenza[distributed]')")

REPO = Path(__file__).resolve().parents[2]


def _write_jobs(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory, tiny_root) -> tuple[Path, Path]:
    """``(jobs file, its outputs made in this process)``: 3 pieces from the tiny model, 2 renders of a song."""
    import symusic

    from cadenza import Studio

    folder = tmp_path_factory.mktemp("batch")
    score = symusic.Score(480)
    score.tracks.append(symusic.Track())
    score.tracks[0].notes.extend(symusic.Note(240 * k, 240, 60 + 2 * k, 100) for k in range(4))
    score.dump_midi(str(folder / "song.mid"))
    jobs = _write_jobs(folder / "jobs.jsonl", [
        *({"model": "tiny-remi", "conditioning": {"bars": 2}, "output": f"gen/{i}.mid"} for i in range(3)),
        *({"render": "song.mid", "render_options": {"reverb": False, "sample_rate": 22050, "gain": 0.3 + 0.1 * i},
           "output": f"played/{i}.wav"} for i in range(2)),
    ])
    summary = Studio(model_dirs=[tiny_root]).batch(jobs, folder / "here", runner=InlineRunner(), progress=False)
    assert (summary.ok, summary.failed) == (5, 0)
    return jobs, folder / "here"


def same_files(a: Path, b: Path) -> None:
    made = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.suffix != ".json" and p.name != "report.jsonl")
    assert made == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.suffix != ".json" and p.name != "report.jsonl")
    assert len(made) == 5 and not [p for p in made if ".part" in p.name]
    for rel in made:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_a_batch_on_local_ray_makes_what_a_local_run_makes(ray_session, studio, tmp_path, batch):
    jobs, here = batch
    on_ray = studio.batch(jobs, tmp_path / "ray", runner=RayRunner(workers=2), progress=False)
    assert (on_ray.ok, on_ray.failed) == (5, 0)
    same_files(here, tmp_path / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``ray start ... --block``: the node lives as long as this process (stopped with it, and only it:
    ``ray stop`` would stop every Ray on the machine)."""
    ray = str(Path(sys.executable).with_name("ray"))
    return subprocess.Popen([ray, "start", *args, "--block", "--disable-usage-stats"], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(node: subprocess.Popen) -> None:
    node.terminate()
    try:
        node.wait(timeout=30)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait()


def test_a_batch_on_a_two_node_cluster(tiny_root, tmp_path, batch):
    """`ray start --head` and `ray start --address` (one CPU each) on this machine, joined by `cadenza batch
    --ray 127.0.0.1:PORT`: its two workers (one CPU each) run one on each node, and make the same files as a
    run here."""
    jobs, here = batch
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="cray-", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "CADENZA_MODELS": str(tiny_root), "OMP_NUM_THREADS": "1",
           # the cluster admits only processes holding this test's token
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = _start(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                   "--object-store-memory=100000000", f"--temp-dir={folder}"], env, tmp_path / "head.log")
    nodes = [head]
    try:
        _wait_for_port(port, head, tmp_path / "head.log")
        nodes.append(_start([f"--address=127.0.0.1:{port}", "--num-cpus=1", "--object-store-memory=100000000"],
                            env, tmp_path / "worker.log"))
        run = subprocess.run([sys.executable, "-m", "cadenza.app.cli", "batch", str(jobs), "-o", str(tmp_path / "cluster"),
                              "--ray", f"127.0.0.1:{port}", "--json"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(folder, ignore_errors=True)
    same_files(here, tmp_path / "cluster")


def _wait_for_port(port: int, node: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if node.poll() is not None:
            pytest.fail(f"ray start --head ended: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"the Ray head did not listen on port {port}: {log.read_text()[-2000:]}")
