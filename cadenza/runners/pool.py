"""The default runner: a pool of local worker processes, each set up once (e.g. one loaded synth)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from cadenza.errors import InvalidConditioning
from cadenza.runners.base import J, Outcome, R, Task
from cadenza.runners.inline import InlineRunner
from cadenza.runners.worker import SetupFailed, TaskWorker

MAX_WORKERS = 256  # more processes than this would only fight over the cores (and memory)
WORKERS_DIE_IN_SETUP = "the worker processes died while setting up, twice, before any job started"
LOST_WORKER = "a worker process died (crash or out of memory) while doing this job, twice (once in a fresh process)"


class ProcessPoolRunner:
    """Runs jobs on ``workers`` local processes; each runs ``Task.setup`` once and keeps its state.

    Workers are spawned (they start clean, safe whatever threads torch or Gradio run in the parent),
    so a script using this needs the usual ``if __name__ == "__main__":`` guard. With one worker, or
    one job, the jobs run in this process instead. Workers end by themselves when the parent process
    is killed.

    A worker that dies (killed, out of memory, a crash in a library) breaks the process pool; the
    jobs then running are retried, each alone in a fresh process, and reported as ``Outcome.lost``
    only when that process dies too. Jobs that had not started go on in a new pool: one dead worker
    costs its job a retry, never the run.
    """

    def __init__(self, workers: int = 2) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise InvalidConditioning(f"workers must be a whole number from 1 to {MAX_WORKERS}, got {workers!r}")
        self.workers = workers

    def map(self, task: Task[J, R], jobs: Sequence[J]) -> Iterator[Outcome[J, R]]:
        if not jobs:
            return
        workers = min(self.workers, len(jobs))
        if workers == 1:
            yield from InlineRunner().map(task, jobs)
            return
        todo = list(range(len(jobs)))
        interrupted: list[int] = []
        idle_breaks = 0
        while todo:
            pending, todo = todo, []
            for index, outcome in _run_pool(task, jobs, pending, workers):
                if outcome is _INTERRUPTED:
                    interrupted.append(index)
                elif outcome is _NOT_STARTED:
                    todo.append(index)
                else:
                    yield outcome
            # A pool that broke before any job started: its workers die in set-up (or were killed idle).
            idle_breaks = idle_breaks + 1 if len(todo) == len(pending) else 0
            if idle_breaks == 2:
                raise RuntimeError(WORKERS_DIE_IN_SETUP)
        for index in interrupted:  # each alone, so a job that kills its worker again takes no other job with it
            [(_, outcome)] = list(_run_pool(task, jobs, [index], 1))
            yield Outcome(jobs[index], lost=LOST_WORKER) if outcome in (_INTERRUPTED, _NOT_STARTED) else outcome


_INTERRUPTED = object()  # its worker died while it ran
_NOT_STARTED = object()  # the pool broke before it started


def _run_pool(task: Task, jobs: Sequence, indices: list[int], workers: int) -> Iterator[tuple[int, object]]:
    """Run ``jobs[i]`` for ``i`` in ``indices`` on a fresh pool of ``workers`` processes; yield ``(i, Outcome)``
    as each finishes, or, once a worker died, ``(i, _INTERRUPTED)`` for the jobs that were running and
    ``(i, _NOT_STARTED)`` for the others."""
    context = multiprocessing.get_context("spawn")
    # Which jobs a worker has begun: a BrokenProcessPool fails every unfinished future alike, and only
    # the ones that were running have a claim to be the cause. Written by the workers without a lock
    # (one byte per job, each written by one process).
    started = context.RawArray("b", len(jobs))
    # A ProcessPoolExecutor rather than multiprocessing.Pool: if a worker dies its jobs fail with
    # BrokenProcessPool instead of the map waiting forever.
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(task, started))
    try:
        futures: dict[Future, int] = {pool.submit(_run_job, i, jobs[i]): i for i in indices}
        for future in as_completed(futures):
            index = futures[future]
            try:
                value = future.result()
            except BrokenProcessPool:
                yield index, _INTERRUPTED if started[index] else _NOT_STARTED
                continue
            if isinstance(value, SetupFailed):
                raise value.error
            yield index, Outcome(jobs[index], value)
    except BaseException:
        # Ctrl-C, a failed set-up, or the consumer stopped: drop the queued jobs now instead of
        # letting shutdown() run them all.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


# Set only inside worker processes, by _init_worker: the state is what makes a worker worth keeping
# (a SoundFont loaded once, not once per job). Never set in the parent process.
_worker: TaskWorker | None = None
_started = None


def _init_worker(task: Task, started) -> None:
    global _worker, _started
    _exit_with_parent()
    _started = started
    _worker = TaskWorker(task)


def _run_job(index: int, job):
    if _worker is None:
        return SetupFailed(RuntimeError("worker not initialised"))
    _started[index] = 1
    return _worker.run(job)


def _exit_with_parent() -> None:
    """End this worker as soon as the parent process is gone. A parent killed outright (SIGTERM,
    SIGKILL, the OOM killer) never tells its pool, and workers would wait on their task queue forever.
    Leaving mid-job must be safe for the task: e.g. outputs written atomically."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
