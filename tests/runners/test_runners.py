"""The runner seam: one Outcome per job, set-up once per worker, lost workers and failed set-ups."""

from __future__ import annotations

import os
import signal

import pytest

from cadenza.errors import MissingDependency
from cadenza.runners import InlineRunner, Outcome, ProcessPoolRunner, Runner, Task


def open_counter(start: int) -> dict:
    return {"pid": os.getpid(), "calls": start, "closed": False}


def count(state: dict, job: int) -> tuple[int, int, int]:
    """``(worker pid, jobs this worker ran so far, job * 2)``; job -1 kills the worker."""
    if job == -1:
        os._exit(1)
    state["calls"] += 1
    return state["pid"], state["calls"], job * 2


def die_once(state: dict, job: tuple[int, str]) -> tuple[int, int]:
    """``(job number, worker pid)``; the first time a job names a marker file that is not there yet, its
    worker creates it and kills itself with SIGKILL (as the OOM killer would) in the middle of the job."""
    number, marker = job
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return number, os.getpid()


def close_counter(state: dict) -> None:
    state["closed"] = True


def no_synth() -> None:
    raise MissingDependency("no SoundFont here")


def boom(state, job):
    raise ValueError(f"job {job} failed")


COUNT = Task(setup=open_counter, run=count, setup_args=(0,), teardown=close_counter)


def test_inline_runner_sets_up_once_and_tears_down():
    states = []

    def remember(start):
        states.append(open_counter(start))
        return states[-1]

    outcomes = list(InlineRunner().map(Task(remember, count, (10,), close_counter), [1, 2, 3]))
    assert [o.value for o in outcomes] == [(os.getpid(), 11, 2), (os.getpid(), 12, 4), (os.getpid(), 13, 6)]
    assert all(o.lost is None for o in outcomes) and [o.job for o in outcomes] == [1, 2, 3]
    assert len(states) == 1 and states[0]["closed"]
    assert list(InlineRunner().map(COUNT, [])) == []


def test_inline_runner_raises_setup_and_job_errors():
    with pytest.raises(MissingDependency, match="SoundFont"):
        list(InlineRunner().map(Task(no_synth, count), [1]))
    with pytest.raises(ValueError, match="job 1 failed"):
        list(InlineRunner().map(Task(open_counter, boom, (0,)), [1, 2]))


def test_a_trivial_runner_satisfies_the_protocol():
    class Serial:
        def map(self, task, jobs):
            for job in jobs:
                yield Outcome(job, task.run(task.setup(*task.setup_args), job))

    runner: Runner = Serial()
    assert [o.value[2] for o in runner.map(COUNT, [4, 5])] == [8, 10]


def test_process_pool_keeps_one_state_per_worker():
    outcomes = list(ProcessPoolRunner(2).map(COUNT, list(range(8))))
    assert sorted(o.job for o in outcomes) == list(range(8))
    assert all(o.value[2] == o.job * 2 for o in outcomes)
    pids = {o.value[0] for o in outcomes}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    for pid in pids:  # each worker counted its own jobs: set up once, state kept between jobs
        calls = sorted(o.value[1] for o in outcomes if o.value[0] == pid)
        assert calls == list(range(1, len(calls) + 1))


def test_process_pool_reports_lost_jobs_and_raises_setup_errors():
    outcomes = list(ProcessPoolRunner(2).map(COUNT, [-1, 1, 2, 3, 4, 5]))
    assert sorted(o.job for o in outcomes) == [-1, 1, 2, 3, 4, 5]  # every job once, finished or lost
    lost = {o.job: o.lost for o in outcomes if o.lost is not None}
    # the job that kills every worker it runs on is retried once in a fresh process, then reported;
    # the others (running beside it, or queued behind it) all finish
    assert list(lost) == [-1] and "died" in lost[-1] and "twice" in lost[-1]
    assert {o.job: o.value[2] for o in outcomes if o.lost is None} == {1: 2, 2: 4, 3: 6, 4: 8, 5: 10}
    with pytest.raises(MissingDependency, match="no SoundFont here"):
        list(ProcessPoolRunner(2).map(Task(no_synth, count), [1, 2]))


def test_one_worker_runs_in_this_process():
    outcomes = list(ProcessPoolRunner(4).map(COUNT, [7]))
    assert outcomes[0].value == (os.getpid(), 1, 14)


def test_process_pool_survives_a_worker_killed_mid_job(tmp_path):
    marker = str(tmp_path / "killed")
    jobs = [(n, marker if n == 3 else "") for n in range(10)]
    outcomes = list(ProcessPoolRunner(2).map(Task(open_counter, die_once, (0,)), jobs))
    assert os.path.exists(marker)  # a worker was killed with SIGKILL in the middle of job 3
    assert sorted(o.job[0] for o in outcomes) == list(range(10)) and all(o.lost is None for o in outcomes)
    assert sorted(o.value[0] for o in outcomes) == list(range(10))  # nothing lost, nothing twice
