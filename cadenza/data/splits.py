"""Work-level train/validation/test splits, shared by every family's training data.

A piece's split depends only on its path in the corpus, so the symbolic token cache, the rendered audio
clips (codec, codec LM, diffusion) and the DDSP data all hold out the same works: a piece held out of
the symbolic model is never heard, rendered, by the audio models either.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "validation", "test")


def split_of(path: str) -> str:
    """Work-level split from a stable hash of the piece's path: 94% train, 3% validation, 3% test."""
    bucket = int(hashlib.sha1(path.encode()).hexdigest()[:8], 16) % 100
    return "validation" if bucket < 3 else "test" if bucket < 6 else "train"
