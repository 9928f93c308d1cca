"""Keep the server's memory from creeping up under many visitors.

glibc's malloc gives each thread that allocates at the same time its own arena (up to 8 per core) and
rarely hands freed memory back from them. The web server runs every job on a pool thread, so a stream of
jobs (models, audio buffers, pictures, each freed afterwards) left a little more stranded in each arena:
under 10 visitors at a time the server grew by about 100 MB per 100 requests and never came back down
(issue 19). Two arenas hold it flat (about 700 MB instead of 1.2 GB after 400 requests) at no cost we
could measure: 15.3 s per round of 20 requests either way (benchmarks/RESULTS.md, web_load); the jobs
wait for their model's lock anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

SERVER_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def limit_malloc_arenas(arenas: int = SERVER_ARENAS) -> bool:
    """Cap glibc's malloc arenas for the threads made from now on; True when done. Nothing happens off
    glibc (macOS, Windows, musl) or when ``MALLOC_ARENA_MAX`` is set: the environment decides then."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):  # not glibc: no mallopt
        return False
