"""Audio in for the transcriber: any file or array as a stream of mono blocks at the rate a model
needs, checked on the way (NaN, clipping, silence), so inputs of any length pass in bounded memory.

A file is read block by block (libsndfile for WAV/FLAC/OGG/MP3/AIFF, PyAV for M4A/AAC/MP4) and
resampled with soxr's streaming resampler; an array is sliced the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cadenza.errors import CorruptInput, InvalidConditioning

BLOCK_S = 2.0  # seconds of input read at a time
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped


class MonoStream:
    """Mono float32 blocks ``[n]`` at ``sample_rate`` Hz from ``source`` (blocks ``[C, n]`` at
    ``source_rate`` Hz); iterate once. While it runs it measures the input: ``frames_in`` (source
    frames), ``peak`` (largest ``|sample|`` after the channel mix), ``clipped`` (samples at full
    scale). ``duration_s`` is known once the stream is exhausted.

    Raises (while iterating):
        CorruptInput: a NaN or infinite sample (the message says where).
    """

    def __init__(self, source: Iterator[np.ndarray], source_rate: int, sample_rate: int) -> None:
        if source_rate <= 0:
            raise CorruptInput(f"the audio has a sample rate of {source_rate} Hz")
        self._source = source
        self.source_rate = int(source_rate)
        self.sample_rate = int(sample_rate)
        self.frames_in = 0
        self.peak = 0.0
        self.clipped = 0

    @property
    def duration_s(self) -> float:
        return self.frames_in / self.source_rate

    def __iter__(self) -> Iterator[np.ndarray]:
        import soxr

        resampler = None
        if self.source_rate != self.sample_rate:
            resampler = soxr.ResampleStream(self.source_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        for block in self._source:
            mono = block.mean(axis=0, dtype=np.float32) if block.shape[0] > 1 else block[0].astype(np.float32, copy=False)
            if not np.isfinite(mono).all():
                where = (self.frames_in + int(np.argmin(np.isfinite(mono)))) / self.source_rate
                raise CorruptInput(f"the audio has NaN or infinite samples (the first at {where:.2f} s): the file "
                                   "is damaged or was written wrongly; re-export it")
            self.frames_in += mono.shape[0]
            if mono.size:
                self.peak = max(self.peak, float(np.max(np.abs(mono))))
                self.clipped += int(np.count_nonzero(np.abs(mono) >= CLIP_LEVEL))
            out = mono if resampler is None else resampler.resample_chunk(mono, last=False)
            if out.size:
                yield np.ascontiguousarray(out, dtype=np.float32)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if tail.size:
                yield np.ascontiguousarray(tail, dtype=np.float32)


def array_stream(samples: np.ndarray, sample_rate: int, target_rate: int) -> MonoStream:
    """A `MonoStream` over ``samples`` (``[T]`` mono or ``[C, T]``) at ``sample_rate`` Hz.

    Raises:
        InvalidConditioning: not a 1-D or 2-D array, or a sample rate that is not a positive whole number.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise InvalidConditioning(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    data = np.asarray(samples)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or not 1 <= data.shape[0] <= 8:
        raise InvalidConditioning(f"audio must be [samples] or [channels, samples] (1-8 channels), got shape "
                                  f"{np.shape(samples)}")
    if not np.issubdtype(data.dtype, np.floating):
        raise InvalidConditioning(f"audio samples must be floats in [-1, 1], got {data.dtype}")
    block = max(1, int(BLOCK_S * sample_rate))
    blocks = (data[:, i:i + block] for i in range(0, data.shape[1], block))
    return MonoStream(blocks, int(sample_rate), target_rate)


def file_stream(path: str | os.PathLike, target_rate: int) -> MonoStream:
    """A `MonoStream` over an audio file, read ``BLOCK_S`` seconds at a time.

    Raises:
        InputNotFound: no such file.
        CorruptInput: empty, or not audio any reader here understands.
        MissingDependency: an M4A/AAC file without PyAV.
    """
    from cadenza.fileio.audio import FFMPEG_SUFFIXES, existing_audio_file

    p = existing_audio_file(path)

    if p.suffix.lower() in FFMPEG_SUFFIXES:
        return _av_stream(p, target_rate)
    import soundfile as sf

    try:
        info = sf.info(p)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise CorruptInput(f"cannot read audio file {p}: {exc}. Is it a WAV/FLAC/OGG/MP3 file?") from exc
    block = max(1, int(BLOCK_S * info.samplerate))

    def blocks() -> Iterator[np.ndarray]:
        try:
            with sf.SoundFile(p) as f:
                while True:
                    data = f.read(block, dtype="float32", always_2d=True)
                    if not len(data):
                        return
                    yield data.T
        except (sf.SoundFileError, RuntimeError) as exc:
            raise CorruptInput(f"cannot read audio file {p} to its end: {exc}") from exc

    return MonoStream(blocks(), info.samplerate, target_rate)


def _av_stream(p: Path, target_rate: int) -> MonoStream:
    try:
        import av
    except ImportError as exc:
        from cadenza.errors import MissingDependency

        raise MissingDependency(f"reading {p.suffix} files needs PyAV: pip install av (or convert {p.name} to WAV)") from exc
    try:
        container = av.open(str(p))
    except av.error.FFmpegError as exc:
        raise CorruptInput(f"cannot read audio file {p}: {exc}") from exc
    stream = next((s for s in container.streams if s.type == "audio"), None)
    if stream is None:
        container.close()
        raise CorruptInput(f"{p} holds no audio stream")
    rate = int(stream.rate)

    def blocks() -> Iterator[np.ndarray]:
        to_float = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        try:
            with container:
                for frame in container.decode(stream):
                    for out in to_float.resample(frame):
                        yield out.to_ndarray().astype(np.float32, copy=False)
        except av.error.FFmpegError as exc:
            raise CorruptInput(f"cannot read audio file {p} to its end: {exc}") from exc

    return MonoStream(blocks(), rate, target_rate)


def rebuffer(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """``blocks`` of any sizes -> blocks of exactly ``size`` samples (the last one shorter, never empty)."""
    pending: list[np.ndarray] = []
    held = 0
    for block in blocks:
        pending.append(block)
        held += block.shape[0]
        while held >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            rest = joined[size:]
            pending, held = ([rest] if rest.size else []), rest.shape[0]
    if held:
        yield np.concatenate(pending)
