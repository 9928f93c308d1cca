"""The verified-hash cache: a file is read in full again whenever its size or mtime changed."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from cadenza.fileio import hashes


@pytest.fixture
def cache(tmp_path, monkeypatch):
    store = tmp_path / "cache.json"
    monkeypatch.setenv(hashes.CACHE_ENV, str(store))
    hashes.forget()
    yield store
    hashes.forget()


def settled(path, data: bytes, age_s: float = 60.0) -> None:
    """Write ``data`` and date the file ``age_s`` seconds back (older than the racy window)."""
    path.write_bytes(data)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def test_a_settled_file_is_remembered_with_its_size_and_mtime(tmp_path, cache):
    f = tmp_path / "w.bin"
    settled(f, b"abc" * 1000)
    assert hashes.cached_sha256(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
    entry = json.loads(cache.read_text())["files"][str(f.resolve())]
    assert entry[:2] == [f.stat().st_size, f.stat().st_mtime_ns]


def test_a_changed_file_is_hashed_again(tmp_path, cache):
    f = tmp_path / "w.bin"
    settled(f, b"a" * 100)
    first = hashes.cached_sha256(f)
    settled(f, b"b" * 100, age_s=30.0)  # same size, another mtime
    assert hashes.cached_sha256(f) != first
    assert hashes.cached_sha256(f) == hashlib.sha256(b"b" * 100).hexdigest()


def test_the_cache_is_used_across_processes_by_size_and_mtime(tmp_path, cache):
    """What the key means (and documents): same size and mtime_ns = the remembered hash."""
    f = tmp_path / "w.bin"
    settled(f, b"a" * 100)
    hashes.cached_sha256(f)
    hashes.forget()  # a new process: only the file cache remains
    data = json.loads(cache.read_text())
    data["files"][str(f.resolve())][2] = "0" * 64
    cache.write_text(json.dumps(data))
    assert hashes.cached_sha256(f) == "0" * 64


def test_a_file_modified_just_now_is_never_remembered(tmp_path, cache):
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"x")
    hashes.cached_sha256(f)
    assert not cache.exists() or str(f.resolve()) not in json.loads(cache.read_text())["files"]


def test_a_broken_cache_is_ignored_and_rewritten(tmp_path, cache):
    cache.write_text("{not json")
    f = tmp_path / "w.bin"
    settled(f, b"q")
    assert hashes.cached_sha256(f) == hashlib.sha256(b"q").hexdigest()
    assert str(f.resolve()) in json.loads(cache.read_text())["files"]


def test_off_hashes_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv(hashes.CACHE_ENV, "off")
    hashes.forget()
    f = tmp_path / "w.bin"
    settled(f, b"q")
    assert hashes.cached_sha256(f) == hashlib.sha256(b"q").hexdigest()
    assert hashes.cache_path() is None
