"""Batch execution behind one seam: a planner hands a ``Task`` and its jobs to a ``Runner``.

``ProcessPoolRunner`` (local worker processes) is the default; ``InlineRunner`` runs in this
process; ``RayRunner`` runs on Ray actors, on this machine or a cluster (extra ``distributed``; Ray is
imported only when it runs). A runner only has to implement ``Runner.map``.
This package imports nothing from the rest of Cadenza but its errors: render, data and the app build on it.
"""

from cadenza.runners.base import Outcome, Runner, Task
from cadenza.runners.inline import InlineRunner
from cadenza.runners.pool import ProcessPoolRunner
from cadenza.runners.ray_runner import RayRunner

__all__ = ["InlineRunner", "Outcome", "ProcessPoolRunner", "RayRunner", "Runner", "Task"]
