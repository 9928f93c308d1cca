"""Atomic writes: a failure leaves the target as it was and no temporary file behind."""

from __future__ import annotations

import pytest

from cadenza.fileio import atomic_path, atomic_write_bytes, atomic_write_text


def test_success_replaces_target(tmp_path):
    target = tmp_path / "out.mid"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        assert tmp.suffix == ".mid"  # writers that pick a format by suffix still work
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not visible until the block succeeds
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mid"]


def test_failure_leaves_target_untouched_and_no_temp_file(tmp_path):
    target = tmp_path / "out.wav"
    target.write_bytes(b"precious")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-writ")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_failure_without_previous_target_creates_nothing(tmp_path):
    target = tmp_path / "sub" / "new.txt"
    with pytest.raises(KeyError):
        with atomic_path(target):
            raise KeyError("x")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_write_helpers(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "deep" / "b.txt", "héllo")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "deep" / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "deep"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from cadenza.fileio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "out.json").st_mode) == 0o644
