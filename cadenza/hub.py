"""The Hugging Face hub, for ``cadenza pull`` only (the one place Cadenza downloads).

- ``require_network``: one quick check before anything is fetched. Offline (``HF_HUB_OFFLINE`` set, or
  the hub's host not reachable within a few seconds) is one clear error at once, instead of
  huggingface_hub's retries and a half-made model folder.
- ``hf_snapshot``: files of a repository at a pinned revision, downloaded into the Hugging Face cache
  (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), so they are shared with
  every other tool that reads that cache rather than copied.
- ``link_files``: a Cadenza model folder (``~/.cache/cadenza/NAME``: its manifest and links) points at
  those cached files.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlparse

from cadenza.errors import CheckpointError

DEFAULT_ENDPOINT = "https://huggingface.co"
CHECK_TIMEOUT_S = 3.0

# (hub repository, revision or None, file patterns) -> the local folder holding that snapshot's files
Snapshot = Callable[[str, "str | None", tuple[str, ...]], Path]


def endpoint() -> tuple[str, int]:
    """``(host, port)`` of the hub: ``$HF_ENDPOINT`` (a mirror) or huggingface.co."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _offline_by_setting() -> str | None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "on", "yes", "true"):
            return name
    return None


def _connect(host: str, port: int, timeout_s: float) -> None:
    """Open and close one TCP connection to ``host:port`` (name lookup included) within ``timeout_s``;
    OSError (TimeoutError when it took too long) otherwise."""
    failure: list[BaseException] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            failure.append(exc)

    # In a thread, because a name lookup with no network can hang far longer than the socket timeout.
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"no answer in {timeout_s:g} s")
    if failure:
        raise failure[0]


def require_network(timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise CheckpointError at once, in one line, when the hub cannot be reached."""
    setting = _offline_by_setting()
    if setting is not None:
        raise CheckpointError(f"cadenza pull downloads from the Hugging Face hub, but {setting} is set (offline "
                              f"mode): unset it to pull; models already pulled work offline")
    host, port = endpoint()
    try:
        _connect(host, port, timeout_s)
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
        raise CheckpointError(f"cannot reach {host} ({reason}): cadenza pull needs the network; models already "
                              f"pulled work offline") from None


def hf_snapshot(repo: str, revision: str | None, patterns: tuple[str, ...]) -> Path:
    """Download the files of ``repo`` at ``revision`` matching ``patterns`` into the Hugging Face cache
    (files already there are not fetched again; huggingface_hub checks each file's sha256); returns the
    snapshot folder. Errors become one-line CheckpointErrors."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        from cadenza.errors import MissingDependency

        raise MissingDependency("cadenza pull needs huggingface_hub: pip install huggingface_hub") from exc
    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=list(patterns)))
    except (OSError, ValueError) as exc:  # huggingface_hub's HTTP, gating, revision and connection errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"could not download {repo}{'@' + revision if revision else ''}: {first}") from None


def link_files(snapshot: Path, names: Iterable[str], target: Path) -> None:
    """Make ``target/name`` a symbolic link to ``snapshot/name`` for each name (the files stay in the
    Hugging Face cache, stored once). An existing file or link there is replaced."""
    for name in names:
        link(Path(snapshot) / name, target / name)


def link(source: Path, at: Path) -> None:
    """Make ``at`` a symbolic link to ``source`` (absolute), replacing what is there atomically (a reader
    sees the old entry or the new link; a real folder at ``at`` is refused, never deleted)."""
    if at.is_dir() and not at.is_symlink():
        raise CheckpointError(f"{at} is a folder (an earlier pull's copy?): move it away to pull again")
    at.parent.mkdir(parents=True, exist_ok=True)
    temporary = at.with_name(f".{at.name}.link")
    temporary.unlink(missing_ok=True)
    os.symlink(os.path.abspath(source), temporary)
    os.replace(temporary, at)


def snapshot_files(snapshot: Path) -> list[str]:
    """Every file of ``snapshot`` (relative, with /), links followed."""
    return sorted(p.relative_to(snapshot).as_posix() for p in Path(snapshot).rglob("*") if p.is_file())
