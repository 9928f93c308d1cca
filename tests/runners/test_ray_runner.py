"""The Ray runner: one state per actor, errors as on every runner, and a worker killed mid-run costing
its job a retry, not the run (outputs byte-equal to a local run's). One local Ray for the session."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import symusic

from cadenza.errors import MissingDependency
from cadenza.runners import InlineRunner, RayRunner, Task


@pytest.fixture(scope="module", autouse=True)
def test_functions_by_value(ray_session):
    """Ray workers cannot import this test module: its functions travel by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def open_counter(start: int) -> dict:
    return {"pid": os.getpid(), "calls": start}


def count(state: dict, job: int) -> tuple[int, int, int]:
    """``(worker pid, jobs this worker ran so far, job * 2)``."""
    state["calls"] += 1
    return state["pid"], state["calls"], job * 2


def no_synth() -> None:
    raise MissingDependency("no SoundFont here")


def boom(state, job):
    raise ValueError(f"job {job} failed")


def open_killable_renderer(options, marker: str):
    from cadenza.render.jobs import open_renderer

    return open_renderer(options), marker


def render_or_die(state, job):
    """Render ``job``; the first worker to reach the third file kills itself with SIGKILL instead (as the
    OOM killer would), once: the marker file says it happened."""
    from cadenza.render.jobs import render_job

    renderer, marker = state
    if job.input.endswith("2.mid") and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return render_job(renderer, job)


def test_ray_runner_keeps_one_state_per_actor():
    outcomes = list(RayRunner(workers=2).map(Task(open_counter, count, (0,)), list(range(12))))
    assert sorted(o.job for o in outcomes) == list(range(12)) and all(o.lost is None for o in outcomes)
    assert all(o.value[2] == o.job * 2 for o in outcomes)
    pids = {o.value[0] for o in outcomes}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    for pid in pids:  # each actor counted its own jobs: set up once, its state kept between jobs
        calls = sorted(o.value[1] for o in outcomes if o.value[0] == pid)
        assert calls == list(range(1, len(calls) + 1))


def test_ray_runner_raises_setup_and_job_errors_in_the_caller():
    with pytest.raises(MissingDependency, match="no SoundFont here"):
        list(RayRunner(workers=2).map(Task(no_synth, count), [1, 2]))
    with pytest.raises(ValueError, match="job 1 failed"):
        list(RayRunner(workers=1).map(Task(open_counter, boom, (0,)), [1]))


def test_pool_size_follows_cpus_or_gpus():
    assert RayRunner().pool_size({"CPU": 8.0}, 100) == 8
    assert RayRunner().pool_size({"CPU": 8.0}, 3) == 3
    assert RayRunner(cpus_per_worker=2).pool_size({"CPU": 8.0}, 100) == 4
    assert RayRunner(gpus_per_worker=1).pool_size({"CPU": 64.0, "GPU": 4.0}, 100) == 4
    assert RayRunner(workers=5).pool_size({"CPU": 1.0}, 100) == 5
    assert RayRunner().pool_size({}, 10) == 1


def test_a_worker_killed_mid_run_loses_nothing(tmp_path):
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    from cadenza.render.fluidsynth import RenderOptions, check_available
    from cadenza.render.jobs import RenderJob, render_task

    try:
        soundfont = check_available()
    except MissingDependency as e:
        pytest.skip(str(e))
    options = RenderOptions(sample_rate=22050, reverb=False, chorus=False, normalize_lufs=None, tail_s=0.2,
                            soundfont=str(soundfont))
    for i in range(6):
        score = symusic.Score(480)
        track = symusic.Track(program=8 * i)
        track.notes.extend(symusic.Note(240 * k, 240, 60 + i + k, 100) for k in range(4))
        score.tracks.append(track)
        score.dump_midi(str(tmp_path / f"{i}.mid"))
    jobs = [RenderJob(str(tmp_path / f"{i}.mid"), str(tmp_path / "ray" / f"{i}.wav")) for i in range(6)]
    (tmp_path / "ray").mkdir()
    marker = str(tmp_path / "killed")
    outcomes = list(RayRunner(workers=2).map(Task(open_killable_renderer, render_or_die, (options, marker)), jobs))
    assert os.path.exists(marker)  # a worker was killed in the middle of the run
    assert all(o.lost is None and o.value["status"] == "ok" for o in outcomes) and len(outcomes) == 6
    local = [RenderJob(j.input, j.output.replace("/ray/", "/local/")) for j in jobs]
    (tmp_path / "local").mkdir()
    assert all(o.value["status"] == "ok" for o in InlineRunner().map(render_task(options), local))
    for ours, theirs in zip(jobs, local, strict=True):  # nothing truncated: every file as a local run writes it
        assert Path(ours.output).read_bytes() == Path(theirs.output).read_bytes()
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == [f"{i}.wav" for i in range(6)]  # no .part left
