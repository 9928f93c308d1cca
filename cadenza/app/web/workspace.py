"""The app's one temp folder: a subfolder per browser session, the latest job's files kept, all removed
when the session ends or the app closes. Nothing else on disk is written by the web app."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import threading
from pathlib import Path


class Workspace:
    """``root``: a fresh private folder under the system temp dir (or ``parent``)."""

    def __init__(self, parent: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cadenza-app-", dir=parent))
        atexit.register(self.close)  # also when the app is not closed cleanly
        self._lock = threading.Lock()
        self._counter = 0

    def new_job(self, session: str) -> Path:
        """An empty folder for one job of ``session``; the session's earlier jobs are removed (their
        files were already handed to the page, which keeps its own copies)."""
        folder = self._session_dir(session)
        with self._lock:
            self._counter += 1
            job = folder / f"job-{self._counter}"
        if folder.exists():
            for old in folder.iterdir():
                shutil.rmtree(old, ignore_errors=True)
        job.mkdir(parents=True)
        return job

    def latest_job(self, session: str) -> Path | None:
        folder = self._session_dir(session)
        jobs = sorted(folder.glob("job-*"), key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []
        return jobs[-1] if jobs else None

    def drop_session(self, session: str) -> None:
        shutil.rmtree(self._session_dir(session), ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _session_dir(self, session: str) -> Path:
        # a session id comes from the client: keep only safe characters so it can never leave root
        safe = re.sub(r"[^A-Za-z0-9_-]", "", session or "")[:64] or "anonymous"
        return self.root / safe
