"""The simplest runner: every job in this process, one after another, with one set-up state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cadenza.runners.base import J, Outcome, R, Task


class InlineRunner:
    """Runs jobs here, in order. For one job or one worker a process pool would only add start-up
    time; it also keeps tests and debuggers in one process."""

    def map(self, task: Task[J, R], jobs: Sequence[J]) -> Iterator[Outcome[J, R]]:
        if not jobs:
            return
        state = task.setup(*task.setup_args)
        try:
            for job in jobs:
                yield Outcome(job, task.run(state, job))
        finally:
            if task.teardown is not None:
                task.teardown(state)
