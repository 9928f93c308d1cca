"""Shared fixtures: a tiny random DDSP instrument checkpoint, a Studio that finds it, a sung tone file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.fileio.audio import write_audio
from cadenza.studio import Studio

from ddsp_fixtures import TINY_NAME, build_tiny_instrument, sung_tone


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddsp_models")
    build_tiny_instrument(root / TINY_NAME)
    return root


@pytest.fixture
def studio(model_root) -> Studio:
    return Studio(model_dirs=[model_root])


@pytest.fixture(scope="session")
def voice_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddsp_audio") / "voice.wav"
    write_audio(path, sung_tone()[None], 22050)
    return path
