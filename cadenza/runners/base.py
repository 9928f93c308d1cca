"""The seam between deciding what to do (planning) and doing it (a runner).

A planner describes the work as a ``Task`` (what each worker sets up once, and what it does per job)
and a list of jobs; a ``Runner`` runs them somewhere (this process, a local process pool, a cluster)
and yields one ``Outcome`` per job as each finishes. Planners never know which runner they got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class Task(Generic[J, R]):
    """What every worker does.

    ``setup(*setup_args)`` runs once per worker and returns its state (a loaded synth, a model);
    ``run(state, job)`` runs once per job; ``teardown(state)``, if given, frees the state where the
    runner outlives its workers' use (a worker process that exits frees it anyway). ``setup`` and
    ``run`` must be module-level functions and ``setup_args`` picklable, so that a runner can ship the
    task to another process or machine by reference.

    An exception raised by ``setup`` is raised from ``Runner.map`` in the caller (the same type, where
    it pickles); one raised by ``run`` too, and it ends the map: a job that must not stop the others
    catches its own failures and returns them as its result.
    """

    setup: Callable[..., Any]
    run: Callable[[Any, J], R]
    setup_args: tuple = ()
    teardown: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Outcome(Generic[J, R]):
    """One job's end: ``value`` is what ``Task.run`` returned, or ``lost`` says why it never
    finished (its worker died: a crash, the OOM killer, a lost node); then ``value`` is ``None``."""

    job: J
    value: R | None = None
    lost: str | None = None


class Runner(Protocol):
    """Runs a ``Task`` over jobs.

    ``map`` yields exactly one ``Outcome`` per job, in any order, as each finishes. Closing the
    iterator early (or an exception in the consumer, Ctrl-C included) cancels the jobs not yet started.
    """

    def map(self, task: Task[J, R], jobs: Sequence[J]) -> Iterator[Outcome[J, R]]: ...
