"""Where benchmarks find the repository's files: resolved from this package, never from the current
folder, so ``python -m benchmarks NAME`` gives the same figures wherever it is run from."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"  # the training caches (`cadenza train ... --prepare`); absent in a fresh clone
CHECKPOINTS = REPO / "checkpoints"
