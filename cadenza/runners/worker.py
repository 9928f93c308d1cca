"""One worker's side of a `Task`: set up once, run jobs, hand a failed set-up to the caller.

Every runner that runs jobs outside the caller's process (worker processes, Ray actors) keeps one
`TaskWorker` per worker, so a set-up failure reaches the caller the same way whichever runner it was.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

from cadenza.runners.base import Task


@dataclass(frozen=True)
class SetupFailed:
    """What a job returns when its worker's ``Task.setup`` raised: the runner raises ``error`` in the caller."""

    error: BaseException


class TaskWorker:
    """``task.setup`` run once, at construction; ``run(job)`` runs ``task.run`` on that state.

    A failed set-up is kept and returned by every ``run`` as a `SetupFailed` rather than raised: raised
    in a worker it would kill the worker, and the caller would see only that a worker died.
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self.state: object = None
        self.error: BaseException | None = None
        try:
            self.state = task.setup(*task.setup_args)
        except Exception as e:  # noqa: BLE001 -- not hidden: the first job hands it to the caller, which raises it
            self.error = portable_error(e)

    def run(self, job):
        if self.error is not None:
            return SetupFailed(self.error)
        return self.task.run(self.state, job)

    def close(self) -> None:
        if self.error is None and self.task.teardown is not None:
            self.task.teardown(self.state)


def portable_error(error: BaseException) -> BaseException:
    """``error`` if it survives pickling (to be raised in the caller), else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 -- any failure means "send a plain copy instead"
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
