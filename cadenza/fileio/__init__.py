"""Files in and out, below everything else: atomic writes (here: a killed process never leaves a
half-written output behind), MIDI files (``fileio.midi``), audio files and loudness (``fileio.audio``),
and PNG pictures of scores and sounds (``fileio.images``)."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cadenza.errors import CadenzaError, OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary file lives in the same directory (so the rename is atomic on POSIX) and keeps the
    suffix of ``path`` (so writers that pick a format by suffix still work). On any exception the
    temporary file is removed and ``path`` is left untouched. The result gets the permissions a plain
    ``open(path, "w")`` would give (mkstemp's private 0600 would hide outputs from other users).

    Raises:
        OutputError: the file cannot be written (``path`` is a folder, its folder is read-only or a
            file, the disk is full, the name is refused): any ``OSError`` of the write, as one line.
    """
    target = Path(path)
    check_output_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=target.parent)
    except (OSError, UnicodeError) as exc:
        raise output_error(target, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        if isinstance(exc, CadenzaError):  # e.g. an input the writer reads is missing: not about this output
            raise
        raise output_error(target, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path once it can be an output file: it is not a folder, and the nearest folder above
    it that exists is a folder we may write in. Cheap (metadata only): call it before long work, so a
    bad ``-o`` is refused before a model runs, not after.

    Raises:
        OutputError: saying what is wrong with ``path``.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {shown(target)}: it is a folder (give a file name, e.g. {shown(target / 'out')}"
                          f"{target.suffix or '.wav'})")
    if not target.name or target.name in (".", ".."):
        raise OutputError(f"cannot write {shown(target)}: give a file name")
    parent = _nearest_existing(target.parent)
    if not parent.is_dir():
        raise OutputError(f"cannot write {shown(target)}: {shown(parent)} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {shown(target)}: no permission to write in the folder {shown(parent)}")
    return target


def check_output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path once it can be a folder of outputs: a folder we may write in, or not there yet
    with a writable folder above it (a batch's output folder: checked before the batch starts).

    Raises:
        OutputError: ``path`` is a file, or a place we may not write in.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write into {shown(folder)}: it is a file, not a folder (give a folder for the outputs)")
    probe = _nearest_existing(folder)
    if not probe.is_dir():
        raise OutputError(f"cannot write into {shown(folder)}: {shown(probe)} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {shown(folder)}: no permission to write in {shown(probe)}")
    return folder


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or the nearest folder above it that exists (where a write there would be made)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def output_error(target: Path, exc: BaseException) -> OutputError:
    """``exc`` (an OSError, or a UnicodeError from a name the file system cannot hold) as one line naming
    ``target``."""
    if isinstance(exc, UnicodeError):
        reason = "the file system cannot store this file name (characters outside its encoding)"
    elif getattr(exc, "errno", None) == errno.ENOSPC:
        reason = "the disk is full (no space left on device)"
    elif getattr(exc, "errno", None) == errno.EDQUOT:
        reason = "the disk quota is exceeded"
    elif isinstance(exc, IsADirectoryError):
        reason = "it is a folder"
    elif isinstance(exc, PermissionError):
        reason = "permission denied"
    elif getattr(exc, "errno", None) == errno.EROFS:
        reason = "the file system is read-only"
    else:
        reason = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
    return OutputError(f"cannot write {shown(target)}: {reason}")


def shown(path: str | os.PathLike) -> str:
    """``path`` as text that can always be printed: bytes of a name that are not valid UTF-8 (kept by
    Python as lone surrogates) are shown as ``\\xNN`` escapes instead of failing to encode."""
    text = os.fspath(path)
    if not isinstance(text, str):
        return repr(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeError:  # surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter before Python 3.13)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
