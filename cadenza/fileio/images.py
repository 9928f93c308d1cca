"""Pictures of music: a piano roll of a score and a spectrogram of audio, as PNG files.

Figures are built with matplotlib's object API on the Agg canvas, never pyplot: pyplot keeps global
figure state, which is neither thread-safe (the web app renders from several threads) nor needed.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import symusic
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from cadenza.errors import CorruptInput
from cadenza.fileio import atomic_path
from cadenza.fileio.audio import check_samples
from cadenza.fileio.midi import bar_line_ticks, to_seconds

_DPI = 100
LOWEST_HZ = 30.0  # the spectrogram's floor: below the lowest note of most instruments
SPECTROGRAM_ROWS = 384  # log-spaced frequency rows drawn (about one per image pixel)


def piano_roll_png(
    score: symusic.Score, path: str | os.PathLike, *, width_px: int = 1200, height_px: int = 480
) -> None:
    """Draw every note of ``score`` as a bar (x: seconds, tempo map applied; y: MIDI pitch), one
    colour per track, and write a PNG to ``path`` atomically.

    Raises:
        CorruptInput: the score has no notes.
    """
    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    _draw_piano_roll(fig.add_subplot(), score)
    fig.tight_layout()
    _save(fig, path)


def score_and_spectrogram_png(score: symusic.Score, samples: np.ndarray, sr: int, path: str | os.PathLike, *,
                              width_px: int = 1200, height_px: int = 760) -> None:
    """The score's piano roll above the spectrogram of its performance ``samples [C, N]``, on one time
    axis: what was asked beside what was played. Raises CorruptInput for a score without notes."""
    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    roll_ax, spec_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 3]})
    _draw_piano_roll(roll_ax, score)
    roll_ax.set_xlabel("")
    roll_ax.set_title("score", loc="left", fontsize="small")
    _draw_spectrogram(fig, spec_ax, samples, sr, bar_axes=[roll_ax, spec_ax])  # both narrowed alike: times line up
    spec_ax.set_title("performance", loc="left", fontsize="small")
    roll_ax.set_xlim(0.0, samples.shape[-1] / sr)
    _save(fig, path)


def _draw_piano_roll(ax, score: symusic.Score) -> None:
    seconds = to_seconds(score)
    if seconds.note_num() == 0:
        raise CorruptInput("the score has no notes: nothing to draw")
    low, high, end = 127, 0, 0.0
    for i, track in enumerate(seconds.tracks):
        if not len(track.notes):
            continue
        n = track.notes.numpy()
        start, stop = n["time"].astype(np.float64), (n["time"] + n["duration"]).astype(np.float64)
        pitch = n["pitch"].astype(np.float64)
        # One polygon collection per track: thousands of notes draw in one call.
        boxes = np.stack(
            [np.stack([start, pitch - 0.4], 1), np.stack([stop, pitch - 0.4], 1),
             np.stack([stop, pitch + 0.4], 1), np.stack([start, pitch + 0.4], 1)], axis=1
        )
        label = track.name or ("drums" if track.is_drum else f"program {track.program}")
        ax.add_collection(PolyCollection(boxes, facecolors=f"C{i % 10}", edgecolors="none", label=label))
        low, high, end = min(low, int(pitch.min())), max(high, int(pitch.max())), max(end, float(stop.max()))
    lines = bar_lines_s(score, end)
    step = 1 if len(lines) <= 64 else 4  # a long piece: every 4th bar line, or the roll turns grey
    for k, at in enumerate(lines):
        ax.axvline(at, color="0.55" if k % (4 * step) == 0 else "0.8", linewidth=0.6, zorder=0)
    ax.set_xlim(0.0, end)
    ax.set_ylim(low - 1.5, high + 1.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    if len(seconds.tracks) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.grid(True, axis="y", alpha=0.2)


def bar_lines_s(score: symusic.Score, end_s: float) -> list[float]:
    """Seconds of every bar line of ``score`` up to ``end_s``, following its time-signature changes
    (4/4 when it has none) and its tempo map."""
    if score.ttype == symusic.TimeUnit.second:
        return []  # no ticks to count bars in
    last_tick = max((n.time + n.duration for t in score.tracks for n in t.notes), default=0)
    markers = symusic.Score(score.ticks_per_quarter)
    markers.tempos = score.tempos.copy()
    track = symusic.Track()
    for tick in itertools.islice(itertools.takewhile(lambda t: t <= last_tick, bar_line_ticks(score)), 10_000):
        track.notes.append(symusic.Note(tick, 1, 60, 1))
    markers.tracks.append(track)
    return [float(t) for t in to_seconds(markers).tracks[0].notes.numpy()["time"] if t <= end_s]


def spectrogram_png(
    samples: np.ndarray, sr: int, path: str | os.PathLike, *, width_px: int = 1200, height_px: int = 480
) -> None:
    """Draw the spectrogram (dB re full scale, 2048-point Hann frames, 75% overlap; x: seconds,
    y: Hz on a log scale from 30 Hz, where music lives, up to ``sr / 2``) of ``samples [C, N]``
    (channels averaged) at ``sr`` Hz, and write a PNG to ``path`` atomically."""
    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    _draw_spectrogram(fig, fig.add_subplot(), samples, sr)
    fig.tight_layout()
    _save(fig, path)


def _draw_spectrogram(fig: Figure, ax, samples: np.ndarray, sr: int, bar_axes=None) -> None:
    check_samples(samples)
    db, hop = _stft_db(samples.mean(axis=0, dtype=np.float64))
    low, high = LOWEST_HZ, sr / 2.0
    rows = np.geomspace(low, high, SPECTROGRAM_ROWS)
    bins = rows / (sr / ((db.shape[0] - 1) * 2))  # fractional FFT bin of each row
    below = np.clip(np.floor(bins).astype(int), 0, db.shape[0] - 2)
    frac = (bins - below)[:, None]
    log_db = db[below] * (1.0 - frac) + db[below + 1] * frac  # linear interpolation between FFT bins
    extent = (0.0, db.shape[1] * hop / sr, 0.0, 1.0)
    image = ax.imshow(log_db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=-100.0, vmax=0.0)
    ticks = [f for f in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if low <= f <= high]
    ax.set_yticks([np.log(f / low) / np.log(high / low) for f in ticks])
    ax.set_yticklabels([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, log)")
    fig.colorbar(image, ax=ax if bar_axes is None else bar_axes, label="dB")


def _stft_db(x: np.ndarray, n_fft: int = 2048) -> tuple[np.ndarray, int]:
    """Magnitude in dB re full scale, ``[n_fft // 2 + 1, frames]``, Hann window, 75% overlap; and the
    hop in samples. Floored at -120 dB so digital silence is black, not log(0)."""
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    hop = n_fft // 4
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    window = np.hanning(n_fft)
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)) * (2.0 / window.sum())
    return 20.0 * np.log10(np.maximum(magnitude.T, 1e-6)), hop


def _save(fig: Figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
