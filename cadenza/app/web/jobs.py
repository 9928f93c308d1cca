"""Running jobs: a cancel flag per browser session and a concurrency gate per model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cadenza import Cancelled

CANCEL_WAIT_S = 5.0  # how long Cancel waits for the job to stop before it says "Stopping..."


class JobBoard:
    """One running job per session; ``cancel(session)`` sets its flag, which the engine polls each step.

    A cancel that arrives up to ``grace_s`` before the job starts (Cancel pressed right after Generate,
    before the request reached the worker) still stops it.
    """

    def __init__(self, grace_s: float = 2.0) -> None:
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        self._running: dict[str, threading.Event] = {}
        self._early: dict[str, float] = {}

    @contextmanager
    def job(self, session: str) -> Iterator[threading.Event]:
        event = threading.Event()
        with self._lock:
            self._running[session] = event
            if time.monotonic() - self._early.pop(session, float("-inf")) <= self.grace_s:
                event.set()
        try:
            yield event
        finally:
            with self._lock:
                if self._running.get(session) is event:
                    del self._running[session]
                self._ended.notify_all()

    def cancel(self, session: str) -> bool:
        """Ask ``session``'s job to stop; False when it has none running."""
        with self._lock:
            event = self._running.get(session)
            if event is None:
                now = time.monotonic()
                # forget early cancels too old to matter, so pages that press Cancel idly leave nothing behind
                for old in [s for s, at in self._early.items() if now - at > self.grace_s]:
                    del self._early[old]
                self._early[session] = now
                return False
        event.set()
        return True

    def wait_idle(self, session: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until ``session`` has no running job; True when it has none."""
        with self._ended:
            return self._ended.wait_for(lambda: session not in self._running, timeout=timeout_s)

    def cancel_reply(self, session: str, wait_s: float = CANCEL_WAIT_S) -> str | None:
        """What the Cancel button writes on the status line: None (write nothing) once the job has
        stopped, because the job's own handler then writes how it ended ("Stopped.", or "Done" when the
        click came too late); writing "Stopping..." as well would race that message to the page, and
        arriving second it would stay there. "Stopping..." only when the job is still running after
        ``wait_s`` (a step or a model load that takes long)."""
        if not self.cancel(session):
            return "Nothing is running."
        return None if self.wait_idle(session, wait_s) else "Stopping..."


class ModelGates:
    """At most ``limit`` jobs per model at once; others wait, are told so, and may be cancelled while
    waiting. The web app uses ``limit=1``: a `Studio` runs one call per model at a time anyway (its
    per-model lock), and this gate makes that wait visible and cancellable instead of silent."""

    def __init__(self, limit: int = 1) -> None:
        self.limit = max(1, limit)
        self._lock = threading.Lock()
        self._gates: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def hold(self, model: str, cancelled: Callable[[], bool],
             waiting: Callable[[], None] | None = None) -> Iterator[None]:
        with self._lock:
            gate = self._gates.setdefault(model, threading.BoundedSemaphore(self.limit))
        told = False
        while not gate.acquire(timeout=0.2):
            if cancelled():
                raise Cancelled(f"cancelled while waiting for {model!r}")
            if waiting is not None and not told:
                waiting()
                told = True
        try:
            yield
        finally:
            gate.release()
