"""Piano roll and spectrogram PNGs: written atomically, valid PNG files, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.errors import CorruptInput, InvalidConditioning
from cadenza.fileio.images import piano_roll_png, spectrogram_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_piano_roll(tmp_path, score_of):
    score = score_of(notes=[(i * 240, 240, 60 + i, 100) for i in range(12)], qpm=90)
    piano_roll_png(score, tmp_path / "roll.png")
    assert (tmp_path / "roll.png").read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["roll.png"]  # no temporary file left behind
    with pytest.raises(CorruptInput, match="no notes"):
        piano_roll_png(score_of(notes=[]), tmp_path / "empty.png")


def test_spectrogram(tmp_path):
    t = np.arange(22050) / 22050
    tone = np.stack([np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
    spectrogram_png(tone, 22050, tmp_path / "spec.png")
    spectrogram_png(np.zeros((1, 100), dtype=np.float32), 22050, tmp_path / "silence.png")
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in tmp_path.iterdir())
    with pytest.raises(InvalidConditioning):
        spectrogram_png(tone.T.copy(), 22050, tmp_path / "wrong.png")
