"""sha256 of files, with a cache of hashes already verified, so a model or SoundFont is read in full
once, not on every start.

The cache maps a file's resolved path to ``(size, mtime_ns, sha256)``: a file whose size or
modification time changed is hashed again. The key is size and mtime only: a file rewritten with the
same size and its modification time set back (which takes a deliberate ``touch -d``/``os.utime``) would
keep its old hash. That is the trade the cache makes for a fast start; set ``CADENZA_HASH_CACHE=off``
to hash every file in full every time. As git does with its index, a file modified in the last few
seconds is never remembered: a rewrite within the same clock tick could not be told apart by its mtime.

The cache lives in ``$CADENZA_HASH_CACHE`` (a file path), else ``$XDG_CACHE_HOME/cadenza/sha256-cache.json``
(``~/.cache/...``). It is plain JSON written atomically; a missing, unreadable or malformed cache is
treated as empty (and rewritten), never as an error, and it holds hashes only, never code.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from cadenza.fileio import atomic_write_text

CACHE_ENV = "CADENZA_HASH_CACHE"
MAX_ENTRIES = 2000  # the oldest entries are dropped beyond this (a cache of a few hundred KB at most)
SETTLED_S = 3.0  # a file modified more recently than this is hashed every time, never remembered
_lock = threading.Lock()
_memory: dict[str, tuple[int, int, str]] = {}  # this process's verified hashes, same key


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 of the whole file at ``path`` (hex), read now in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path() -> Path | None:
    """Where verified hashes are kept, or None when ``CADENZA_HASH_CACHE=off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() in ("off", "0", "no", "false"):
        return None
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza" / "sha256-cache.json"


def cached_sha256(path: str | os.PathLike) -> str:
    """The sha256 of ``path``: from the cache when the file's size and mtime_ns are those it was hashed
    with, else hashed now (and remembered). Raises OSError as ``open`` does for a missing file."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key, stamp = str(resolved), (stat.st_size, stat.st_mtime_ns)
    store = cache_path()
    if store is None:
        return sha256_of(resolved)
    with _lock:
        hit = _memory.get(key)
    if hit is not None and hit[:2] == stamp:
        return hit[2]
    entries = _read(store)
    entry = entries.get(key)
    if entry is not None and (entry[0], entry[1]) == stamp:
        with _lock:
            _memory[key] = entry
        return entry[2]
    digest = sha256_of(resolved)
    after = resolved.stat()
    if (after.st_size, after.st_mtime_ns) != stamp or time.time() - after.st_mtime < SETTLED_S:
        return digest  # changed while being read, or too recently to trust its mtime: not remembered
    with _lock:
        _memory[key] = (*stamp, digest)
    entries.pop(key, None)  # re-inserted last: the newest entries are the ones kept
    entries[key] = (*stamp, digest)
    _write(store, entries)
    return digest


def forget(path: str | os.PathLike | None = None) -> None:
    """Drop ``path`` (or everything, with None) from this process's memory of verified hashes (the file
    cache re-checks size and mtime anyway)."""
    with _lock:
        if path is None:
            _memory.clear()
        else:
            _memory.pop(str(Path(path).resolve()), None)


def _read(store: Path) -> dict[str, tuple[int, int, str]]:
    try:
        data = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = {}
    for key, value in (data.get("files", {}) if isinstance(data, dict) else {}).items():
        if (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value[:2])
                and isinstance(value[2], str) and len(value[2]) == 64):
            entries[key] = (value[0], value[1], value[2])
    return entries


def _write(store: Path, entries: dict[str, tuple[int, int, str]]) -> None:
    kept = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        atomic_write_text(store, json.dumps({"version": 1, "files": {k: list(v) for k, v in kept.items()}}))
    except OSError:
        pass  # a read-only cache folder only costs the next start a full hash
