"""Audio files in and out, and loudness normalisation.

Every array here is ``[C, N] float32``: C channels (1 mono, 2 stereo) by N samples, full scale = 1.0.
soundfile and pyloudnorm use ``[N, C]``; the transposes happen only at those boundaries.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from cadenza.errors import CorruptInput, InputNotFound, InvalidConditioning
from cadenza.fileio import atomic_path, shown


# suffix -> (libsndfile format, default subtype, allowed subtypes)
FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    ".wav": ("WAV", "PCM_16", ("PCM_16", "PCM_24", "PCM_32", "FLOAT")),
    ".flac": ("FLAC", "PCM_16", ("PCM_16", "PCM_24")),
    ".ogg": ("OGG", "VORBIS", ("VORBIS", "OPUS")),
}

# Compressed formats libsndfile cannot read, decoded with PyAV (FFmpeg's libraries, in its wheel).
FFMPEG_SUFFIXES = (".m4a", ".aac", ".mp4")

# A channel count above this almost surely means the caller passed [N, C] instead of [C, N].
_MAX_CHANNELS = 8
PEAK_CEILING_DBFS = -1.0
MAX_INPUT_LEVEL = 1000.0  # a float file's samples beyond this (60 dB over full scale) are not sound but garbage


def read_audio(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False
) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG, anything libsndfile reads).

    Args:
        path: the file.
        sample_rate: resample to this rate in Hz (with soxr); ``None`` keeps the file's rate.
        mono: average the channels into one.

    Returns:
        ``(samples [C, N] float32, sample_rate in Hz)``.

    Raises:
        InputNotFound: the file does not exist.
        CorruptInput: the file is empty, truncated, not audio, or holds no samples.
    """
    p = existing_audio_file(path)
    if p.suffix.lower() in FFMPEG_SUFFIXES:
        data, sr = _read_with_av(p)
    else:
        try:
            data, sr = sf.read(p, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as e:  # libsndfile reports every format problem this way
            raise CorruptInput(f"cannot read audio file {p}: {e}. Is it a WAV/FLAC/OGG file?") from e
    if data.shape[0] == 0:
        raise CorruptInput(f"audio file has no samples: {shown(p)}")
    if not np.isfinite(data).all():
        raise CorruptInput(f"audio file {shown(p)} holds NaN or infinite samples: it is broken, nothing can be made "
                           "from it")
    peak = float(np.max(np.abs(data)))
    if peak > MAX_INPUT_LEVEL:  # float files may pass full scale a little, not by 60 dB: such numbers overflow later
        raise CorruptInput(f"audio file {shown(p)} holds samples {peak:.3g} times full scale: it is broken (or not "
                           "audio), nothing can be made from it")
    samples = np.ascontiguousarray(data.T)
    if mono and samples.shape[0] > 1:
        samples = samples.mean(axis=0, keepdims=True, dtype=np.float32)
    if sample_rate is not None and int(sample_rate) != sr:
        samples = resample(samples, sr, int(sample_rate))
        sr = int(sample_rate)
        if samples.shape[1] == 0:
            raise CorruptInput(f"audio file {shown(p)} is too short to use: {data.shape[0]} sample(s)")
    return samples, int(sr)


def existing_audio_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path once it names a non-empty file. Raises InputNotFound or CorruptInput."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"audio file not found: {p}")
    if p.stat().st_size == 0:
        raise CorruptInput(f"audio file is empty (0 bytes): {p}")
    return p


def audio_frames(path: str | os.PathLike) -> int:
    """Number of sample frames in an audio file, read cheaply where the format allows.

    Raises:
        CorruptInput: the file is not a readable audio file.
    """
    p = Path(path)
    if p.suffix.lower() in FFMPEG_SUFFIXES:
        return _read_with_av(p)[0].shape[0]
    try:
        return sf.info(p).frames
    except (sf.SoundFileError, RuntimeError) as exc:
        raise CorruptInput(f"{p} is not a readable audio file ({exc})") from exc


def audio_seconds(path: str | os.PathLike) -> float:
    """Length of an audio file in seconds, from its header where the format allows (cheap).

    Raises:
        InputNotFound / CorruptInput: no such file, or not a readable audio file.
    """
    p = existing_audio_file(path)
    if p.suffix.lower() in FFMPEG_SUFFIXES:
        return _av_seconds(p)
    try:
        info = sf.info(p)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise CorruptInput(f"{shown(p)} is not a readable audio file ({exc})") from exc
    if info.samplerate <= 0:
        raise CorruptInput(f"{shown(p)} declares a sample rate of {info.samplerate} Hz: it is broken")
    return info.frames / info.samplerate


def _import_av(p: Path):
    """PyAV, which reads AAC/M4A ``p``; MissingDependency saying how to get it."""
    try:
        import av
    except ImportError as exc:
        from cadenza.errors import MissingDependency

        raise MissingDependency(f"reading {p.suffix} files needs PyAV: pip install av (or convert {p.name} to WAV)") from exc
    return av


def _audio_stream(container, p: Path):
    """The first audio stream of an opened PyAV ``container`` of ``p``; CorruptInput when it has none."""
    stream = next((s for s in container.streams if s.type == "audio"), None)
    if stream is None:
        raise CorruptInput(f"{shown(p)} holds no audio stream")
    return stream


def _av_seconds(p: Path) -> float:
    """Length of an AAC/M4A file from its container, or by counting its decoded samples (never holding them)."""
    av = _import_av(p)
    try:
        with av.open(str(p)) as container:
            stream = _audio_stream(container, p)
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000  # in AV_TIME_BASE units
            return sum(frame.samples for frame in container.decode(stream)) / stream.rate
    except av.error.FFmpegError as exc:
        raise CorruptInput(f"cannot read audio file {shown(p)}: {exc}") from exc


def _read_with_av(p: Path) -> tuple[np.ndarray, int]:
    """``(samples [N, C] float32, rate)`` of an AAC/M4A file, decoded with PyAV."""
    av = _import_av(p)
    try:
        with av.open(str(p)) as container:
            stream = _audio_stream(container, p)
            rate = stream.rate
            to_float = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)  # planar float32
            chunks = [out.to_ndarray() for frame in container.decode(stream) for out in to_float.resample(frame)]
    except av.error.FFmpegError as exc:
        raise CorruptInput(f"cannot read audio file {shown(p)}: {exc}") from exc
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32), int(rate)
    return np.ascontiguousarray(np.concatenate(chunks, axis=1).T, dtype=np.float32), int(rate)


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``[C, N] float32`` from ``sr_in`` to ``sr_out`` Hz with soxr (high quality)."""
    import soxr  # only needed when rates differ

    check_samples(samples)
    if sr_in <= 0 or sr_out <= 0:
        raise InvalidConditioning(f"sample rates must be positive, got {sr_in} -> {sr_out} Hz")
    out = soxr.resample(samples.T, sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def write_audio(
    path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str | None = None
) -> None:
    """Write ``samples [C, N] float32`` to ``path``; the format comes from the suffix.

    ``.wav`` (default PCM_16; PCM_24, PCM_32, FLOAT), ``.flac`` (PCM_16, PCM_24), ``.ogg`` (VORBIS).
    The write is atomic: a failure or a kill leaves no partial file at ``path``.

    Raises:
        InvalidConditioning: unknown suffix, a subtype the format cannot hold, or a bad array shape.
    """
    p = Path(path)
    fmt, default_subtype, allowed = _format_for(p)
    subtype = (subtype or default_subtype).upper()
    if subtype not in allowed:
        raise InvalidConditioning(
            f"{p.suffix} cannot hold subtype {subtype!r}; choose one of {', '.join(allowed)}"
        )
    check_samples(samples)
    if not 0 < sample_rate <= 768_000:
        raise InvalidConditioning(f"sample_rate must be 1-768000 Hz, got {sample_rate}")
    data = np.asarray(samples, dtype=np.float32)
    if data.shape[1] == 0:
        raise InvalidConditioning(f"refusing to write {shown(p)}: there are no samples (an empty file would look "
                                  "like a finished one)")
    check_finite(data, p)
    if subtype != "FLOAT":
        # libsndfile does not clip float -> int conversion by default: an overshoot would wrap around
        # to full scale of the other sign, which is far worse than a clipped sample.
        data = np.clip(data, -1.0, 1.0)
    with atomic_path(p) as tmp, tmp.open("wb") as raw:
        # Through a file object: given a path, libsndfile fsyncs every file it closes, which costs a
        # batch ~5-10 ms a file. The rename in atomic_path already keeps outputs whole when a process
        # is killed; surviving a power cut mid-batch is not promised.
        with reporting_writes(raw) as f:
            sf.write(f, data.T, int(sample_rate), subtype=subtype, format=fmt)


def check_finite(samples: np.ndarray, where: str | os.PathLike) -> None:
    """Raise ``InvalidConditioning`` when ``samples`` hold a NaN or an infinity: written to a PCM file they
    would become full-scale garbage (every sample -32768), and no output is better than that."""
    if samples.size and not np.isfinite(samples).all():
        bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
        raise InvalidConditioning(f"refusing to write {shown(where)}: {bad} of its {samples.size} samples are NaN or "
                                  "infinite (the audio was broken before it reached the file; nothing was written)")


@contextlib.contextmanager
def reporting_writes(raw):
    """``raw`` (a binary file) wrapped so that an ``OSError`` raised while libsndfile writes through it
    (a full disk) comes out as that OSError. soundfile calls ``write`` from a C callback, which cannot
    raise: the error would be printed, the write come back short and soundfile fail with a bare
    ``AssertionError``."""
    wrapper = _ReportingFile(raw)
    try:
        yield wrapper
    except (AssertionError, RuntimeError, sf.SoundFileError):
        if wrapper.error is not None:
            raise wrapper.error from None
        raise
    if wrapper.error is not None:
        raise wrapper.error


class _ReportingFile:
    """A binary file whose ``write`` keeps the first ``OSError`` for ``reporting_writes`` instead of raising
    it into C code, and reports a short write (0 bytes) from then on."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self.error: OSError | None = None

    def write(self, data) -> int:
        if self.error is not None:
            return 0
        try:
            return self._raw.write(data)
        except OSError as exc:
            self.error = exc
            return 0

    def __getattr__(self, name: str):
        return getattr(self._raw, name)


@dataclass(frozen=True)
class Loudness:
    """What loudness normalisation did, for the record (an output's sidecar ``notes["loudness"]``).

    ``target_lufs``: what was asked for. ``measured_lufs``: the integrated loudness of the result, after
    limiting (None when it cannot be measured). ``limited_db``: the most the peak limiter turned any moment
    down (0: untouched). ``why_not``: set when the result misses the target by more than
    ``TOLERANCE_LU``, saying why (too short to measure, silent, or peaks that would need more limiting
    than ``MAX_LIMIT_DB``). ``method``: how, when the piece was not held whole (``fileio.audio_stream``).
    """

    target_lufs: float
    measured_lufs: float | None
    limited_db: float
    why_not: str | None = None
    method: str | None = None  # set when it was done another way than on the whole piece at once (streamed)

    @classmethod
    def reached(cls, target_lufs: float, measured: float, limited_db: float, method: str | None = None) -> Loudness:
        """The record of a normalisation that ended at ``measured`` LUFS (NaN: unmeasurable) after
        ``limited_db`` of limiting: ``why_not`` says why when it missed ``target_lufs``."""
        why_not = None
        if not np.isfinite(measured):
            why_not = "too quiet to measure after limiting"
        elif abs(measured - target_lufs) > TOLERANCE_LU:
            why_not = (f"its peaks would need more than {MAX_LIMIT_DB:g} dB of limiting to reach {target_lufs:g} LUFS: "
                       f"left at {measured:.1f} LUFS rather than squashed")
        return cls(float(target_lufs), round(float(measured), 2) if np.isfinite(measured) else None,
                   round(float(limited_db), 2), why_not, method)

    def to_dict(self) -> dict:
        out = {"target_lufs": self.target_lufs, "measured_lufs": self.measured_lufs, "limited_db": self.limited_db}
        return out | ({"why_not": self.why_not} if self.why_not else {}) | ({"method": self.method} if self.method else {})


TOLERANCE_LU = 0.5  # a result this close to its target is on target
LUFS_RANGE = (-70.0, 0.0)  # targets a loudness normalisation may be asked for (the -70 LUFS gate up to full scale)


def check_lufs(target: float | None) -> None:
    """Raise ``InvalidConditioning`` unless ``target`` is None (no normalisation) or a finite loudness in
    ``LUFS_RANGE``: a NaN target would turn every sample into NaN, 1e9 overflow."""
    low, high = LUFS_RANGE
    if target is None:
        return
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not math.isfinite(target) or not low <= target <= high:
        raise InvalidConditioning(f"loudness target must be a number from {low:g} to {high:g} LUFS (e.g. -14), "
                                  f"got {target!r}")
MAX_LIMIT_DB = 12.0  # the most the limiter may turn a peak down


def loudness_normalize(samples: np.ndarray, sr: int, target_lufs: float = -14.0) -> np.ndarray:
    """``samples [C, N] float32`` at ``target_lufs`` with no sample above -1 dBFS: ``normalize_loudness``'s
    audio alone."""
    gain, _ = loudness_gain(samples, sr, target_lufs)
    return (samples * gain).astype(np.float32, copy=False)


def normalize_loudness(samples: np.ndarray, sr: int, target_lufs: float = -14.0) -> tuple[np.ndarray, Loudness]:
    """``(samples at target_lufs [C, N] float32, what was done)``: see ``loudness_gain``."""
    gain, report = loudness_gain(samples, sr, target_lufs)
    return (samples * gain).astype(np.float32, copy=False), report


def loudness_gain(samples: np.ndarray, sr: int, target_lufs: float = -14.0) -> tuple[np.ndarray, Loudness]:
    """The gain that brings ``samples [C, N] float32`` to ``target_lufs`` integrated loudness (ITU-R
    BS.1770, see ``integrated_loudness``) without a sample above -1 dBFS: ``[1, N] float32`` (one value per
    sample, the same for every channel, so parts mixed into ``samples`` can take it too), and the record.

    One gain reaches the target; where that would push peaks over the ceiling, a look-ahead limiter
    (``peak_gain``) turns just those moments down, and the gain is corrected once more for what the
    limiter took. The limiter may take at most ``MAX_LIMIT_DB``: a signal that would need more (a lone
    click in near-silence) gets less gain and ends below the target rather than squashed, and the record
    says so. Silence (and audio too quiet to pass the -70 LUFS gate) is left unchanged. Clips shorter than
    one 400 ms loudness block cannot be measured: they only get the peak guard.
    """
    check_lufs(target_lufs)
    check_samples(samples)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    ones = np.ones((1, samples.shape[1]), dtype=np.float32)
    if peak == 0.0:
        return ones, Loudness(target_lufs, None, 0.0, "silent: nothing to bring to a loudness")
    ceiling = 10.0 ** (PEAK_CEILING_DBFS / 20.0)
    if samples.shape[1] < _BLOCK_S * sr:
        return (ones * np.float32(min(1.0, ceiling / peak)),
                Loudness(target_lufs, None, 0.0, f"shorter than {_BLOCK_S} s: loudness cannot be measured, "
                                                 "only its peaks were kept under -1 dBFS"))
    loudness = integrated_loudness(samples, sr)
    if not np.isfinite(loudness):
        return (ones * np.float32(min(1.0, ceiling / peak)),
                Loudness(target_lufs, None, 0.0, "too quiet to measure (below the -70 LUFS gate)"))
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    most = ceiling / peak * 10.0 ** (MAX_LIMIT_DB / 20.0)  # beyond this the limiter would squash
    curve = ones
    for _ in range(3):  # the limiter lowers loudness a little: correct the gain and limit again
        gain = min(gain, most)
        curve = peak_gain(samples * np.float32(gain), sr, ceiling)
        reached = integrated_loudness(samples * (curve * np.float32(gain)), sr)
        if not np.isfinite(reached) or abs(reached - target_lufs) < 0.05 or gain >= most:
            break
        gain *= 10.0 ** ((target_lufs - reached) / 20.0)
    total = (curve * np.float32(gain)).astype(np.float32)
    measured = integrated_loudness(samples * total, sr)
    limited_db = float(-20.0 * np.log10(max(float(curve.min()), 1e-12)))
    return total, Loudness.reached(target_lufs, measured, limited_db)


def limit_peaks(samples: np.ndarray, sr: int, ceiling: float, lookahead_s: float = 0.005) -> np.ndarray:
    """``samples [C, N]`` with no sample above ``ceiling`` (times ``peak_gain``)."""
    return (samples * peak_gain(samples, sr, ceiling, lookahead_s)).astype(np.float32)


def peak_gain(samples: np.ndarray, sr: int, ceiling: float, lookahead_s: float = 0.005) -> np.ndarray:
    """A look-ahead limiter's gain ``[1, N] float32`` for ``samples [C, N]``: at every sample the lowest
    gain any sample within ``lookahead_s`` needs to stay under ``ceiling``, then averaged over the same
    span. An average of those minima never exceeds what the sample itself needs, so the ceiling holds
    exactly, and the gain moves smoothly (no clicks) and starts to fall before a peak arrives."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    level = np.max(np.abs(samples), axis=0)
    needed = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    if needed.min() >= 1.0:
        return np.ones((1, samples.shape[1]), dtype=np.float32)
    radius = max(1, int(lookahead_s * sr))
    held = minimum_filter1d(needed, size=2 * radius + 1, mode="nearest")
    gain = uniform_filter1d(held, size=2 * radius + 1, mode="nearest")
    gain = np.minimum(gain, needed)  # float rounding in the average: the ceiling is a promise
    return gain[None, :].astype(np.float32)


# ITU-R BS.1770-4 gating, as pyloudnorm implements it: 400 ms blocks every 100 ms, an absolute gate at
# -70 LUFS, then a relative gate 10 LU below the loudness of the blocks that passed it.
_BLOCK_S, _STEP, _ABS_GATE, _REL_GATE = 0.4, 0.25, -70.0, -10.0
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs


def integrated_loudness(samples: np.ndarray, sr: int) -> float:
    """Integrated loudness of ``samples [C, N]`` at ``sr`` Hz, in LUFS (ITU-R BS.1770-4); ``-inf``
    when every block is gated out (silence).

    The same measure as ``pyloudnorm.Meter(sr).integrated_loudness`` (pyloudnorm's K-weighting
    filters, its block bounds and gates; the tests compare the two) at a third of the cost, which
    matters when every file of a batch is normalised: one ``sosfilt`` pass over all channels and
    running sums for the blocks, where pyloudnorm filters channel by channel and loops over blocks.
    """
    import pyloudnorm  # imports scipy.signal (~1.3 s): paid only by code that measures loudness
    import scipy.signal

    check_samples(samples)
    channels, n = samples.shape
    if n < _BLOCK_S * sr:
        raise InvalidConditioning(f"loudness needs at least {_BLOCK_S} s of audio, got {n / sr:.3f} s")
    stages = [pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sr, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")]
    sos = np.array([np.concatenate([stage.b, stage.a]) for stage in stages])
    weighted = scipy.signal.sosfilt(sos, samples.astype(np.float64), axis=1)

    lower, upper = loudness_blocks(n, sr)
    running = np.zeros((channels, n + 1))
    np.cumsum(np.square(weighted), axis=1, out=running[:, 1:])
    return gated_loudness((running[:, upper] - running[:, lower]) / (_BLOCK_S * sr))


def loudness_blocks(n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` sample bounds ``[blocks]`` of the 400 ms, 75 %-overlapping blocks of ``n``
    samples at ``sr`` Hz (pyloudnorm's float expressions, exactly)."""
    count = int(np.round((n / sr - _BLOCK_S) / (_BLOCK_S * _STEP))) + 1
    j = np.arange(count)
    lower = (_BLOCK_S * (j * _STEP) * sr).astype(np.int64)
    upper = np.minimum((_BLOCK_S * (j * _STEP + 1) * sr).astype(np.int64), n)
    return lower, upper


def gated_loudness(power: np.ndarray) -> float:
    """Integrated loudness in LUFS from the K-weighted mean squares ``power [C, blocks]`` of the blocks
    (``loudness_blocks``): BS.1770's channel weights, absolute and relative gates; ``-inf`` when every
    block is gated out."""
    weights = np.array([_CHANNEL_WEIGHTS[c] if c < 5 else 1.0 for c in range(power.shape[0])])[:, None]

    def lufs(mean_square: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return -0.691 + 10.0 * np.log10((weights * mean_square).sum(axis=0))

    block_lufs = lufs(power)
    above = block_lufs >= _ABS_GATE
    if not above.any():
        return float("-inf")
    relative = float(lufs(power[:, above].mean(axis=1, keepdims=True))[0]) + _REL_GATE
    gated = (block_lufs > relative) & (block_lufs > _ABS_GATE)
    if not gated.any():
        return float("-inf")
    return float(lufs(power[:, gated].mean(axis=1, keepdims=True))[0])


def _format_for(path: Path) -> tuple[str, str, tuple[str, ...]]:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise InvalidConditioning(
            f"cannot write audio to {path.name!r}: unknown suffix {path.suffix!r}; "
            f"use one of {', '.join(FORMATS)}"
        ) from None


def check_samples(samples: np.ndarray) -> None:
    """Raise ``InvalidConditioning`` unless ``samples`` is a 2-D ``[C, N]`` array with 1-8 channels."""
    if not isinstance(samples, np.ndarray) or samples.ndim != 2:
        shape = getattr(samples, "shape", None)
        raise InvalidConditioning(f"audio must be a 2-D array [channels, samples], got shape {shape}")
    if not 1 <= samples.shape[0] <= _MAX_CHANNELS:
        raise InvalidConditioning(
            f"audio must be [channels, samples] with 1-{_MAX_CHANNELS} channels, got shape "
            f"{samples.shape}; did you pass [samples, channels]?"
        )
