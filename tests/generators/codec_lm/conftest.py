"""Fixtures for the codec LM tests (the builders live in ``tiny_musicgen.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_musicgen import write_tiny_release

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # T5 / MiniLM / transformers MusicGen load from local files only


@pytest.fixture(scope="session")
def release_dirs(tmp_path_factory) -> dict[str, Path]:
    """Bare audiocraft release directories (no manifest): ``mono``, ``melody``, ``stereo``."""
    root = tmp_path_factory.mktemp("musicgen")
    return {kind: write_tiny_release(root / f"tiny-musicgen-{kind}", kind) for kind in ("mono", "melody", "stereo")}
