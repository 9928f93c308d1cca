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


def test_bar_lines_follow_meter_changes_and_tempo(score_of):
    from cadenza.fileio.images import bar_lines_s

    score = score_of(notes=[(0, 480, 60, 90), (4800, 480, 62, 90)], tpq=480, qpm=120, time_signature=(3, 4))
    score.time_signatures.append(__import__("symusic").TimeSignature(2880, 2, 4))  # two bars of 3/4, then 2/4
    assert bar_lines_s(score, 100.0) == pytest.approx([0.0, 1.5, 3.0, 4.0, 5.0])  # 120 BPM: a quarter is 0.5 s


def test_spectrogram_puts_a_low_tone_in_the_middle_of_the_picture(tmp_path):
    """A 440 Hz tone at 44.1 kHz sits 41% up a log axis from 30 Hz, not in the bottom 2% of a linear one."""
    import matplotlib.image

    sr = 44100
    t = np.arange(sr) / sr
    spectrogram_png(np.sin(2 * np.pi * 440 * t)[None].astype(np.float32), sr, tmp_path / "a.png", height_px=400)
    rgb = matplotlib.image.imread(tmp_path / "a.png")[:, :, :3]
    column = rgb[:, rgb.shape[1] // 3]  # one column inside the plot
    inside = np.nonzero(column.mean(axis=1) < 0.97)[0]  # the plot, not the white margins
    top, bottom = inside.min(), inside.max()
    glow = column[:, 0] + column[:, 1] - column[:, 2]  # magma's hot end is yellow: high red and green, less blue
    brightest = top + int(np.argmax(glow[top:bottom + 1]))
    height_from_bottom = (bottom - brightest) / (bottom - top)
    assert 0.35 < height_from_bottom < 0.47
