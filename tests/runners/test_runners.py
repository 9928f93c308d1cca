"""The runner seam: one Outcome per job, set-up once per worker, lost workers and failed set-ups."""

from __future__ import annotations

import os

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
    outcomes = list(ProcessPoolRunner(2).map(COUNT, [-1, 1, 2, 3]))
    assert sorted(o.job for o in outcomes) == [-1, 1, 2, 3]  # every job once, finished or lost
    lost = {o.job: o.lost for o in outcomes if o.lost is not None}
    assert -1 in lost and "died" in lost[-1]
    with pytest.raises(MissingDependency, match="no SoundFont here"):
        list(ProcessPoolRunner(2).map(Task(no_synth, count), [1, 2]))


def test_one_worker_runs_in_this_process():
    outcomes = list(ProcessPoolRunner(4).map(COUNT, [7]))
    assert outcomes[0].value == (os.getpid(), 1, 14)
