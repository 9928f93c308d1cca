"""Batch execution behind one seam: a planner hands a ``Task`` and its jobs to a ``Runner``.

``ProcessPoolRunner`` (local worker processes) is the default; ``InlineRunner`` runs in this
process. Another runner (e.g. Ray, across machines) only has to implement ``Runner.map``.
This package imports nothing from the rest of Cadenza: render, data and the app build on it.
"""

from cadenza.runners.base import Outcome, Runner, Task
from cadenza.runners.inline import InlineRunner
from cadenza.runners.pool import ProcessPoolRunner

__all__ = ["InlineRunner", "Outcome", "ProcessPoolRunner", "Runner", "Task"]
