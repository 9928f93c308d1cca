"""Audio of any length in bounded memory: written block by block, its loudness measured and set block by
block.

A renderer that can play a piece again from the start (FluidSynth, a DDSP instrument: both deterministic)
hands over a *block source*: a function that returns an iterator of ``[C, n] float32`` blocks, the same
blocks every time it is called. ``write_stream`` then writes them to a file (atomically) and, when asked,
brings the piece to a loudness in two passes (or three, when the peaks need limiting): the first measures,
the last writes. Nothing ever holds more than a block (plus the limiter's 10 ms look-ahead), whatever the
length of the music; ``fileio.audio.loudness_gain`` does the same for a piece held whole, and for pieces
that need no limiting the two write the same samples.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from cadenza.errors import InvalidConditioning
from cadenza.fileio import atomic_path
from cadenza.fileio.audio import (_BLOCK_S, _STEP, MAX_LIMIT_DB, PEAK_CEILING_DBFS, Loudness,
                                  _format_for, check_finite, gated_loudness, loudness_blocks, reporting_writes)

BlockSource = Callable[[], Iterator[np.ndarray]]
"""Called with no arguments, returns the piece again from its start as ``[C, n] float32`` blocks."""

STREAMED = ("streamed: measured in a first pass, then the gain (and, where peaks needed it, a 5 ms look-ahead "
            "limiter, its effect measured in a pass of its own) applied block by block while writing; the piece "
            "was never held whole")


_WAV_BYTES = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}
_WAV_LIMIT = 2**32 - 1 - 64  # RIFF sizes are 32-bit: a longer WAV file would be broken


def check_capacity(path: str | os.PathLike, frames: int, channels: int, sample_rate: int,
                   subtype: str | None = None) -> None:
    """Raise ``OutputError`` before any work when ``frames`` samples of ``channels`` cannot fit the format of
    ``path``: a WAV file holds at most 4 GB (6.7 hours of 16-bit stereo at 44.1 kHz); FLAC and Ogg have no
    such limit."""
    from cadenza.errors import OutputError
    from cadenza.fileio import shown

    target = Path(path)
    if target.suffix.lower() != ".wav":
        return
    size = frames * channels * _WAV_BYTES.get((subtype or "PCM_16").upper(), 4)
    if size > _WAV_LIMIT:
        hours = frames / sample_rate / 3600
        raise OutputError(f"cannot write {shown(target)}: {hours:.1f} hours of audio need {size / 2**30:.1f} GiB, more "
                          f"than a WAV file can hold (4 GiB); write .flac instead")


class AudioFileWriter:
    """An audio file written block by block: ``with AudioFileWriter(path, sr, channels) as w: w.write(block)``.

    The format comes from the suffix, as for ``write_audio`` (PCM_16 by default). Atomic: the file appears
    at ``path`` only when the block ends without an exception. Each block is checked for NaN/infinity
    (``InvalidConditioning``: nothing is written) and clipped to [-1, 1] unless the subtype is FLOAT.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, subtype: str | None = None) -> None:
        self.path = Path(path)
        fmt, default_subtype, allowed = _format_for(self.path)
        self.subtype = (subtype or default_subtype).upper()
        if self.subtype not in allowed:
            raise InvalidConditioning(f"{self.path.suffix} cannot hold subtype {self.subtype!r}; choose one of "
                                      f"{', '.join(allowed)}")
        if not 1 <= channels <= 8 or not 0 < sample_rate <= 768_000:
            raise InvalidConditioning(f"cannot write {channels} channels at {sample_rate} Hz")
        self.sample_rate, self.channels, self._format = int(sample_rate), int(channels), fmt
        self.frames = 0
        self._stack: contextlib.ExitStack | None = None
        self._file: sf.SoundFile | None = None

    def __enter__(self) -> AudioFileWriter:
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_path(self.path))
            raw = stack.enter_context(tmp.open("wb"))
            wrapped = stack.enter_context(reporting_writes(raw))
            self._file = stack.enter_context(sf.SoundFile(wrapped, "w", self.sample_rate, self.channels,
                                                          self.subtype, format=self._format))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def write(self, block: np.ndarray) -> None:
        """Append ``block [C, n]`` (C = the writer's channels)."""
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise InvalidConditioning(f"a block must be [{self.channels}, n], got shape {block.shape}")
        data = np.asarray(block, dtype=np.float32)
        check_finite(data, self.path)
        if self.subtype != "FLOAT":
            data = np.clip(data, -1.0, 1.0)  # see write_audio: an overshoot must not wrap around
        self._file.write(data.T)
        self.frames += data.shape[1]

    def __exit__(self, *exc_info) -> bool | None:
        stack, self._stack, self._file = self._stack, None, None
        return stack.__exit__(*exc_info)


class LoudnessMeter:
    """Integrated loudness (ITU-R BS.1770-4, as ``fileio.audio.integrated_loudness``) and sample peak of a
    piece given block by block: ``add(block)`` for every block in order, then ``loudness()``. Holds the
    K-weighting filter's state and one running sum per 100 ms block bound, never the audio."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        import pyloudnorm

        self.sample_rate, self.channels = int(sample_rate), int(channels)
        stages = [pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, "high_shelf"),
                  pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass")]
        self._sos = np.array([np.concatenate([stage.b, stage.a]) for stage in stages])
        self._zi = np.zeros((len(stages), channels, 2))
        self._at: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]  # block bounds passed so far ...
        self._sums: list[np.ndarray] = [np.zeros((channels, 1))]  # ... and the sums of squares over [0, bound)
        self._running = np.zeros(channels)
        self.frames = 0
        self.peak = 0.0

    def add(self, block: np.ndarray) -> None:
        """Take the next ``[C, n]`` block of the piece."""
        import scipy.signal

        n = block.shape[1]
        if n == 0:
            return
        self.peak = max(self.peak, float(np.max(np.abs(block))))
        weighted, self._zi = scipy.signal.sosfilt(self._sos, block.astype(np.float64), axis=1, zi=self._zi)
        running = np.cumsum(np.square(weighted), axis=1)
        running += self._running[:, None]
        pos, end = self.frames, self.frames + n
        bounds = self._bounds_in(pos, end)
        if bounds.size:
            self._at.append(bounds)
            self._sums.append(running[:, bounds - pos - 1])  # bound b sums samples [0, b): up to b - 1
        self._running = running[:, -1].copy()
        self.frames = end

    def _bounds_in(self, pos: int, end: int) -> np.ndarray:
        """The 400 ms blocks' start and end samples (pyloudnorm's float expressions, so the two agree
        exactly) that fall in ``(pos, end]``, sorted."""
        sr, hop = self.sample_rate, _BLOCK_S * _STEP * self.sample_rate
        j = np.arange(max(0, int((pos - _BLOCK_S * sr) // hop) - 2), int(end // hop) + 3)
        found = np.concatenate([(_BLOCK_S * (j * _STEP) * sr).astype(np.int64),
                                (_BLOCK_S * (j * _STEP + 1) * sr).astype(np.int64)])
        return np.unique(found[(found > pos) & (found <= end)])

    def loudness(self) -> float:
        """The integrated loudness in LUFS of what was added (``-inf`` when every block is gated out).

        Raises:
            InvalidConditioning: the piece is shorter than one 400 ms block.
        """
        sr, n = self.sample_rate, self.frames
        if n < _BLOCK_S * sr:
            raise InvalidConditioning(f"loudness needs at least {_BLOCK_S} s of audio, got {n / sr:.3f} s")
        lower, upper = loudness_blocks(n, sr)
        at = np.concatenate(self._at + [np.array([n])])
        sums = np.concatenate(self._sums + [self._running[:, None]], axis=1)
        return gated_loudness((sums[:, np.searchsorted(at, upper)] - sums[:, np.searchsorted(at, lower)])
                              / (_BLOCK_S * sr))


class PeakLimiter:
    """``fileio.audio.peak_gain`` applied block by block: ``process(block)`` returns the limited audio so far
    (it lags ``2 * lookahead`` behind, the span the gain at a sample depends on), ``finish()`` the rest.
    The gain at each sample is the one ``peak_gain`` computes for the whole piece (up to float rounding in
    its running average). ``min_gain``: the lowest gain applied so far."""

    def __init__(self, sample_rate: int, ceiling: float, lookahead_s: float = 0.005, lead: int | None = None) -> None:
        """``lead``: the gain follows the peaks of the first ``lead`` rows of each block only (the piece),
        and is applied to every row (parts of it that must keep summing to it); None: all rows."""
        self.ceiling = float(ceiling)
        self._lead = lead
        self._radius = max(1, int(lookahead_s * sample_rate))
        self._audio: np.ndarray | None = None  # samples not yet returned, from _emitted on
        self._needed = np.zeros(0)  # each sample's own gain, from _first on
        self._first = 0
        self._emitted = 0
        self.min_gain = 1.0

    def process(self, block: np.ndarray) -> np.ndarray:
        """The limited samples that ``block [C, n]`` completes (``[C, m]``, m may be 0)."""
        return self._take(block, final=False)

    def finish(self) -> np.ndarray:
        """The limited samples still held back, once the last block was given."""
        return self._take(None, final=True)

    def _take(self, block: np.ndarray | None, final: bool) -> np.ndarray:
        if block is not None:
            level = np.max(np.abs(block[:self._lead]), axis=0)
            self._needed = np.concatenate([self._needed, np.minimum(1.0, self.ceiling / np.maximum(level, 1e-12))])
            self._audio = block if self._audio is None else np.concatenate([self._audio, block], axis=1)
        if self._audio is None:
            return np.zeros((1, 0), dtype=np.float32)
        received = self._first + self._needed.size
        span = 2 * self._radius
        stop = received if final else received - span
        if stop <= self._emitted:
            return self._audio[:, :0]
        needed = self._needed
        if needed.min() >= 1.0:
            gain = np.ones_like(needed)
        else:
            from scipy.ndimage import minimum_filter1d, uniform_filter1d

            held = minimum_filter1d(needed, size=span + 1, mode="nearest")
            gain = np.minimum(uniform_filter1d(held, size=span + 1, mode="nearest"), needed)
        gain = gain[self._emitted - self._first:stop - self._first].astype(np.float32)
        count = stop - self._emitted
        out = (self._audio[:, :count] * gain[None, :]).astype(np.float32)
        if gain.size:
            self.min_gain = min(self.min_gain, float(gain.min()))
        self._audio = self._audio[:, count:]
        self._emitted = stop
        keep = max(self._first, stop - span)  # the next outputs look back this far
        self._needed = self._needed[keep - self._first:]
        self._first = keep
        return out


def write_stream(path: str | os.PathLike, blocks: BlockSource, sample_rate: int, channels: int,
                 target_lufs: float | None = None, subtype: str | None = None,
                 parts: Sequence[tuple[str | os.PathLike, slice]] = (), guard_peaks: bool = False) -> Loudness | None:
    """Write the piece ``blocks`` plays (``channels`` channels at ``sample_rate`` Hz) to ``path``,
    atomically, at ``target_lufs`` integrated loudness with no sample above -1 dBFS (None: as played).
    Returns what loudness normalisation did (None when not asked): the same decisions as
    ``fileio.audio.loudness_gain`` (the same gain cap, the same records), with one gain correction after
    limiting instead of up to three, and ``method`` saying it was streamed.

    ``parts``: blocks may carry more rows than ``channels``: the parts the piece was mixed from (a DDSP
    render's voices). Each ``(part path, rows)`` writes those rows of every block to its own file, with
    the piece's gain, so the parts still sum to it; only the first ``channels`` rows are measured.
    ``guard_peaks`` (without ``target_lufs``): turn the whole piece down so that no sample passes -1 dBFS
    (one more pass to find its peak).

    Raises:
        InvalidConditioning: a block holds NaN or infinite samples (nothing is written).
        OutputError: a file cannot be written.
    """
    targets = [(Path(path), slice(0, channels))] + [(Path(p), rows) for p, rows in parts]
    if target_lufs is None:
        gain = 1.0
        if guard_peaks:
            peak = max((float(np.max(np.abs(block[:channels]))) for block in blocks() if block.size), default=0.0)
            ceiling = 10.0 ** (PEAK_CEILING_DBFS / 20.0)
            gain = ceiling / peak if peak > ceiling else 1.0
        _write_gained(targets, blocks, sample_rate, subtype, gain, None)
        return None
    meter = LoudnessMeter(sample_rate, channels)
    for block in blocks():
        meter.add(block[:channels])
    peak = meter.peak
    ceiling = 10.0 ** (PEAK_CEILING_DBFS / 20.0)
    if peak == 0.0 or meter.frames < _BLOCK_S * sample_rate:
        why = ("silent: nothing to bring to a loudness" if peak == 0.0 else
               f"shorter than {_BLOCK_S} s: loudness cannot be measured, only its peaks were kept under -1 dBFS")
        _write_gained(targets, blocks, sample_rate, subtype, min(1.0, ceiling / peak) if peak else 1.0, None)
        return Loudness(target_lufs, None, 0.0, why, STREAMED)
    loudness = meter.loudness()
    if not np.isfinite(loudness):
        _write_gained(targets, blocks, sample_rate, subtype, min(1.0, ceiling / peak), None)
        return Loudness(target_lufs, None, 0.0, "too quiet to measure (below the -70 LUFS gate)", STREAMED)
    most = ceiling / peak * 10.0 ** (MAX_LIMIT_DB / 20.0)
    gain = min(10.0 ** ((target_lufs - loudness) / 20.0), most)
    limiter = None
    if gain * peak > ceiling:  # peaks would pass the ceiling: see what limiting takes, correct the gain once
        check = LoudnessMeter(sample_rate, channels)
        trial = PeakLimiter(sample_rate, ceiling)
        for block in blocks():
            check.add(trial.process(block[:channels] * np.float32(gain)))
        check.add(trial.finish())
        reached = check.loudness()
        if np.isfinite(reached) and abs(reached - target_lufs) >= 0.05 and gain < most:
            gain = min(gain * 10.0 ** ((target_lufs - reached) / 20.0), most)
        limiter = PeakLimiter(sample_rate, ceiling, lead=channels)
    final = LoudnessMeter(sample_rate, channels)
    _write_gained(targets, blocks, sample_rate, subtype, gain, limiter, final)
    measured = final.loudness()
    limited_db = -20.0 * np.log10(max(limiter.min_gain, 1e-12)) if limiter is not None else 0.0
    return Loudness.reached(target_lufs, measured, limited_db, STREAMED)


def _write_gained(targets: list[tuple[Path, slice]], blocks: BlockSource, sample_rate: int, subtype: str | None,
                  gain: float, limiter: PeakLimiter | None, meter: LoudnessMeter | None = None) -> None:
    """Write each target's rows of ``blocks`` times ``gain``, through ``limiter`` when given, measuring the
    first target's with ``meter``."""
    with contextlib.ExitStack() as stack:
        writers = []
        for block in blocks():
            if not writers:  # the row counts are known once the first block is there
                for path, rows in targets:
                    count = len(range(*rows.indices(block.shape[0])))
                    writers.append((stack.enter_context(AudioFileWriter(path, sample_rate, count, subtype)), rows))
            out = block * np.float32(gain) if gain != 1.0 else block
            _put(writers, limiter.process(out) if limiter is not None else out.astype(np.float32, copy=False), meter)
        if limiter is not None:
            _put(writers, limiter.finish(), meter)
        if not writers:
            raise InvalidConditioning("nothing to write: the piece has no samples")


def _put(writers: list, out: np.ndarray, meter: LoudnessMeter | None) -> None:
    if not out.shape[1]:
        return
    for index, (writer, rows) in enumerate(writers):
        writer.write(out[rows])
        if index == 0 and meter is not None:
            meter.add(out[rows])
