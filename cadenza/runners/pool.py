"""The default runner: a pool of local worker processes, each set up once (e.g. one loaded synth)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from cadenza.errors import InvalidConditioning
from cadenza.runners.base import J, Outcome, R, Task
from cadenza.runners.inline import InlineRunner

MAX_WORKERS = 256  # more processes than this would only fight over the cores (and memory)
LOST_WORKER = "a worker process died (crash or out of memory) before this job was done"


class ProcessPoolRunner:
    """Runs jobs on ``workers`` local processes; each runs ``Task.setup`` once and keeps its state.

    Workers are spawned (they start clean, safe whatever threads torch or Gradio run in the parent),
    so a script using this needs the usual ``if __name__ == "__main__":`` guard. With one worker, or
    one job, the jobs run in this process instead. A worker that dies loses only its job (reported
    as ``Outcome.lost``), and workers end by themselves when the parent process is killed.
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
        # A ProcessPoolExecutor rather than multiprocessing.Pool: if a worker dies its jobs fail with
        # BrokenProcessPool instead of the map waiting forever.
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(task,))
        try:
            futures = {pool.submit(_run_job, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    value = future.result()
                except BrokenProcessPool:
                    yield Outcome(job, lost=LOST_WORKER)
                    continue
                if isinstance(value, _SetupFailed):
                    raise value.error
                yield Outcome(job, value)
        except BaseException:
            # Ctrl-C, a failed set-up, or the consumer stopped: drop the queued jobs now instead of
            # letting shutdown() run them all.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


@dataclass(frozen=True)
class _SetupFailed:
    error: BaseException


# Set only inside worker processes, by _init_worker: the state is what makes a worker worth keeping
# (a SoundFont loaded once, not once per job). Never set in the parent process.
_task: Task | None = None
_state: object = None
_setup_error: BaseException | None = None


def _init_worker(task: Task) -> None:
    global _task, _state, _setup_error
    _exit_with_parent()
    _task = task
    try:
        _state = task.setup(*task.setup_args)
    except Exception as e:  # noqa: BLE001 -- not hidden: the first job hands it to the parent, which raises it
        # Raising here would break the pool, and every job would be lost with a bare BrokenProcessPool.
        _setup_error = e if _pickles(e) else RuntimeError(f"{type(e).__name__}: {e}")


def _pickles(error: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 -- any failure means "send a plain copy instead"
        return False
    return True


def _run_job(job):
    if _setup_error is not None:
        return _SetupFailed(_setup_error)
    if _task is None:
        return _SetupFailed(RuntimeError("worker not initialised"))
    return _task.run(_state, job)


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
