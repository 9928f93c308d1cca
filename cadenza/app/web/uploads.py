"""Checks on every file path that arrives from the browser, before anything opens it.

A path from the client is accepted only when it resolves (symlinks followed) inside one of the
policy's roots (Gradio's upload folder, the app's own workspace), is a regular file no larger than the
size limit, and has a suffix the widget accepts. Its content is then parsed by `Conditioning` (MIDI
or audio), which raises `CorruptInput` for a broken file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cadenza import CorruptInput, InvalidConditioning

DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_UPLOAD_TOTAL_BYTES = 200 * 1024 * 1024  # per visitor (one open page)


@dataclass(frozen=True)
class UploadPolicy:
    """Where uploads may live and how big they may be. ``roots``: folders (resolved when checked)."""

    roots: tuple[Path, ...]
    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES

    def check(self, path: object, what: str, suffixes: tuple[str, ...] | list[str]) -> str:
        """The resolved path of an uploaded file, or a clear error saying why it is refused.

        Raises:
            InvalidConditioning: not a path string, outside every root, not a file, too large, or a
                suffix the widget does not take.
            CorruptInput: the file is empty.
        """
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise InvalidConditioning(f"{what}: no file was uploaded")
        real = Path(os.path.realpath(os.fspath(path)))
        if not any(_inside(real, root) for root in self.roots):
            raise InvalidConditioning(f"{what}: that file was not uploaded through this page; upload it again")
        if not real.is_file():
            raise InvalidConditioning(f"{what}: the uploaded file is gone (uploads are deleted after a while); "
                                      "upload it again")
        suffix = real.suffix.lower()
        if suffix not in tuple(s.lower() for s in suffixes):
            raise InvalidConditioning(f"{what}: {real.name!r} is not a file this model takes here; "
                                      f"use {', '.join(suffixes)}")
        size = real.stat().st_size
        if size == 0:
            raise CorruptInput(f"{what}: {real.name!r} is empty")
        if size > self.max_bytes:
            raise InvalidConditioning(f"{what}: {real.name!r} is {size / 2**20:.1f} MB; the limit is "
                                      f"{self.max_bytes / 2**20:.0f} MB")
        return str(real)


class UploadChecker(Protocol):
    """What the tabs check uploads with: an ``UploadPolicy``, or a ``VisitorUploads`` over one."""

    roots: tuple[Path, ...]

    def check(self, path: object, what: str, suffixes: tuple[str, ...] | list[str]) -> str: ...


class UploadLedger(Protocol):
    """Counts a visitor's uploads (the app's ``Workspace``)."""

    def add_upload(self, session: str, path: str, limit_bytes: int | None = None) -> int: ...


@dataclass(frozen=True)
class VisitorUploads:
    """``policy``'s checks, and every upload that passes counted against one visitor (a page, Gradio's
    session): past ``max_total_bytes`` in all the next one is refused. Files the app wrote itself (a result
    used as a prompt) are checked but not counted."""

    policy: UploadPolicy
    ledger: UploadLedger
    session: str
    max_total_bytes: int
    uploads_root: Path  # where the server keeps uploads

    @property
    def roots(self) -> tuple[Path, ...]:
        return self.policy.roots

    def check(self, path: object, what: str, suffixes: tuple[str, ...] | list[str]) -> str:
        """``policy.check``, then the visitor's total.

        Raises:
            InvalidConditioning: as ``UploadPolicy.check``, or this visitor has uploaded too much in all.
            CorruptInput: the file is empty.
        """
        checked = self.policy.check(path, what, suffixes)
        if not _inside(Path(checked), self.uploads_root):
            return checked
        total = self.ledger.add_upload(self.session, checked, self.max_total_bytes)
        if total > self.max_total_bytes:
            raise InvalidConditioning(f"{what}: this page has uploaded {total / 2**20:.0f} MB in all with it; the "
                                      f"limit is {self.max_total_bytes / 2**20:.0f} MB per visit (reload the page "
                                      f"to start a new one)")
        return checked


def public_message(exc: Exception | str, roots: tuple[Path, ...]) -> str:
    """``exc`` as text for the page: server folders of uploads and work files are cut down to file names."""
    text = str(exc)
    for root in roots:
        for form in {os.fspath(root), os.path.realpath(root)}:
            text = re.sub(re.escape(form.rstrip("/")) + r"/(?:[^\s'\"/]+/)*", "", text)
    return text


def _inside(path: Path, root: Path) -> bool:
    root = Path(os.path.realpath(root))
    return path == root or root in path.parents
