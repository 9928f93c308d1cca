"""Fixtures of the analysis tests (the audio they hear is made in `made_audio`)."""

from __future__ import annotations

import pytest

from cadenza.analysis import Transcriber


@pytest.fixture(scope="session")
def ear() -> Transcriber:
    """One transcriber for the whole session (its models load once)."""
    return Transcriber(threads=1)
