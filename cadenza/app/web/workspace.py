"""The app's one temp folder: a subfolder per browser session, the latest job's files kept, all removed
when the session ends or the app closes. Nothing else on disk is written by the web app.

Layout under ``root``: ``sessions/<session>/job-<n>/`` (the files a job wrote) and ``served/`` (the web
server's own folder: its copies of uploads and of the files it hands to the page, pointed to by
``GRADIO_TEMP_DIR``). The copies of a job's files go with the job; the uploads a session used go with the
session, unless another live job or session holds the same file (copies are stored by content); a loose
upload file the server never finished goes an hour later.

At most ``max_sessions`` sessions keep files: a new one beyond that pushes out the one idle longest, so
visitors that never say goodbye (an API client, a closed laptop) cannot fill the disk.
"""

from __future__ import annotations

import atexit
import filecmp
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

DEFAULT_MAX_SESSIONS = 200
STRAY_AGE_S = 3600.0  # a loose file in served/ this old is an upload that was never finished

CopiesOf = Callable[[Path], Iterable[Path]]


class Workspace:
    """``root``: a fresh private folder under the system temp dir (or ``parent``).

    ``copies_of(file)``: where the web server keeps its copies of a file the app wrote (the app sets it
    once the server is known; default: none). ``on_removed(paths)``: told which copies and uploads were
    deleted, so the server can forget them too.
    """

    def __init__(self, parent: str | None = None, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cadenza-app-", dir=parent))
        self.sessions = self.root / "sessions"
        self.served = self.root / "served"
        self.sessions.mkdir()
        self.served.mkdir()
        self.max_sessions = max(1, max_sessions)
        self.copies_of: CopiesOf = lambda path: ()
        self.on_removed: Callable[[list[Path]], None] = lambda paths: None
        atexit.register(self.close)  # also when the app is not closed cleanly
        self._lock = threading.RLock()
        self._counter = 0
        self._active: OrderedDict[str, None] = OrderedDict()  # session folder names, least recent first
        self._uploads: dict[str, dict[str, int]] = {}  # session folder name -> upload path -> bytes

    def new_job(self, session: str, keep: Iterable[str | os.PathLike] = ()) -> Path:
        """An empty folder for one job of ``session``; the session's earlier jobs are removed (their
        files were already handed to the page, which keeps its own copies), except the jobs that hold a
        file in ``keep``: results still on the page that a later action reads again (a "Regenerate bars"
        adds a result and keeps the others)."""
        folder = self._session_dir(session)
        with self._lock:
            self._touch(folder.name)
            self._counter += 1
            job = folder / f"job-{self._counter}"
            if folder.exists():
                kept = {self._job_of(folder, path) for path in keep}
                for old in folder.iterdir():
                    if old.name not in kept:
                        self._remove_job(old)
            job.mkdir(parents=True)
        return job

    def latest_job(self, session: str) -> Path | None:
        folder = self._session_dir(session)
        jobs = sorted(folder.glob("job-*"), key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []
        return jobs[-1] if jobs else None

    def add_upload(self, session: str, path: str | os.PathLike, limit_bytes: int | None = None) -> int:
        """Count the upload ``path`` against ``session`` (once per file) and return the session's total
        in bytes; past ``limit_bytes`` the file is not counted and the total it would make is returned
        (the caller refuses it). The session's uploads are deleted with it."""
        key, size = os.path.realpath(path), os.path.getsize(path)
        with self._lock:
            name = self._session_dir(session).name
            self._touch(name)
            ledger = self._uploads.setdefault(name, {})
            if key in ledger:
                return sum(ledger.values())
            total = sum(ledger.values()) + size
            if limit_bytes is None or total <= limit_bytes:
                ledger[key] = size
            return total

    def drop_session(self, session: str) -> None:
        """Remove everything ``session`` left: its jobs, their served copies, the uploads it used."""
        with self._lock:
            self._drop(self._session_dir(session).name)

    def session_count(self) -> int:
        with self._lock:
            return len(self._active)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _touch(self, name: str) -> None:
        """Mark session ``name`` as the most recent; push out the one idle longest when over the cap."""
        self._active[name] = None
        self._active.move_to_end(name)
        while len(self._active) > self.max_sessions:
            oldest = next(iter(self._active))
            self._drop(oldest)

    def _drop(self, name: str) -> None:
        self._active.pop(name, None)
        folder = self.sessions / name
        if folder.exists():
            for job in list(folder.iterdir()):
                self._remove_job(job)
            shutil.rmtree(folder, ignore_errors=True)
        self._sweep_strays()
        uploads = self._uploads.pop(name, {})
        still_used = {p for ledger in self._uploads.values() for p in ledger}
        gone = [Path(p) for p in uploads if p not in still_used and _inside(Path(p), self.served)]
        for path in gone:
            _unlink_with_folder(path, self.served)
        if gone:
            self.on_removed(gone)

    def _sweep_strays(self) -> None:
        """Delete loose files in ``served/`` older than ``STRAY_AGE_S``: the server streams an upload into
        one and renames it into place, and one whose client went away midway is left there by it."""
        now = time.time()
        for path in self.served.iterdir():
            try:
                if path.is_file() and now - path.stat().st_mtime > STRAY_AGE_S:
                    path.unlink()
            except OSError:
                pass

    def _remove_job(self, job: Path) -> None:
        """Delete ``job`` and the server's copies of its files, unless another job holds the same file."""
        gone = []
        for path in (p for p in job.rglob("*") if p.is_file()) if job.is_dir() else ():
            for copy in self.copies_of(path):
                if copy.exists() and _inside(copy, self.served) and not self._held_elsewhere(path, job):
                    _unlink_with_folder(copy, self.served)
                    gone.append(copy)
        shutil.rmtree(job, ignore_errors=True)
        if gone:
            self.on_removed(gone)

    def _held_elsewhere(self, path: Path, job: Path) -> bool:
        """Whether a file of another job has the same name and bytes (then they share the server's copy)."""
        rel = path.relative_to(job)
        for other in self.sessions.glob(f"*/job-*/{rel.as_posix()}"):
            if other.parent != path.parent and other.is_file() and filecmp.cmp(other, path, shallow=False):
                return True
        return False

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
        return self.sessions / safe


def _inside(path: Path, root: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real.startswith(top + os.sep)


def _unlink_with_folder(path: Path, top: Path) -> None:
    """Delete ``path`` and its folder when that is left empty (the server keeps one folder per content)."""
    try:
        path.unlink()
        if path.parent != top:
            path.parent.rmdir()
    except OSError:  # already gone, or the folder holds another file
        pass
