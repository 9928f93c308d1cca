"""Where the time of one CLI run goes, printed when ``CADENZA_TIMINGS`` is set (the cold-start benchmark
reads it): one JSON line on stderr, ``{"cadenza_timings_s": {"startup": ..., "torch_import": ...,
"load": ..., "generate": ..., "write": ...}}``.

``CADENZA_TIMINGS=1`` times the phases from ``main``; set to the launching process's ``time.time()``
(a Unix time) it also gives ``startup``: from that moment to ``main`` (the interpreter and Cadenza's
own imports).
"""

from __future__ import annotations

import json
import os
import sys
import time

ENV = "CADENZA_TIMINGS"


class PhaseClock:
    """Laps of the named phases of a run; a no-op unless ``$CADENZA_TIMINGS`` is set."""

    def __init__(self) -> None:
        value = os.environ.get(ENV, "")
        self.enabled = bool(value)
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()
        try:
            launched = float(value)
        except ValueError:
            launched = 0.0
        if launched > 1e9:  # a Unix time, not a flag
            self.phases["startup"] = round(time.time() - launched, 3)

    def lap(self, name: str) -> None:
        """The time since the last lap (or since ``main`` started) was spent on ``name``."""
        now = time.perf_counter()
        if self.enabled:
            self.phases[name] = round(self.phases.get(name, 0.0) + now - self._last, 3)
        self._last = now

    def report(self) -> None:
        if self.enabled:
            print(json.dumps({"cadenza_timings_s": self.phases}), file=sys.stderr)
