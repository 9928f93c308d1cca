"""The engine tests run on one CPU thread; the tiny models and the CUDA skip are in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
