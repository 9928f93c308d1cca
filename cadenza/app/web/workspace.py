"""The app's one temp folder: a subfolder per browser session, the latest job's files kept, all removed
when the session ends or the app closes. Nothing else on disk is written by the web app."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path


class Workspace:
    """``root``: a fresh private folder under the system temp dir (or ``parent``)."""

    def __init__(self, parent: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cadenza-app-", dir=parent))
        atexit.register(self.close)  # also when the app is not closed cleanly
        self._lock = threading.Lock()
        self._counter = 0

    def new_job(self, session: str, keep: Iterable[str | os.PathLike] = ()) -> Path:
        """An empty folder for one job of ``session``; the session's earlier jobs are removed (their
        files were already handed to the page, which keeps its own copies), except the jobs that hold a
        file in ``keep``: results still on the page that a later action reads again (a "Regenerate bars"
        adds a result and keeps the others)."""
        folder = self._session_dir(session)
        with self._lock:
            self._counter += 1
            job = folder / f"job-{self._counter}"
        if folder.exists():
            kept = {self._job_of(folder, path) for path in keep}
            for old in folder.iterdir():
                if old.name not in kept:
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

    @staticmethod
    def _job_of(folder: Path, path: str | os.PathLike) -> str | None:
        """The name of the job folder under the session ``folder`` that holds ``path`` (None: not in one)."""
        real, root = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
        if root not in real.parents:
            return None
        return real.relative_to(root).parts[0]

    def _session_dir(self, session: str) -> Path:
        # a session id comes from the client: keep only safe characters so it can never leave root
        safe = re.sub(r"[^A-Za-z0-9_-]", "", session or "")[:64] or "anonymous"
        return self.root / safe
