"""`Transcriber`: audio -> `Transcription`, polyphonic (Basic Pitch) or monophonic (torchfcpe), chunk by
chunk so that memory stays bounded whatever the length of the input.

``transcribe(samples, sample_rate, options)`` and ``transcribe_file(path, options)`` are the one-call forms;
hold a ``Transcriber`` to keep its models loaded between calls.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import numpy as np

from cadenza.analysis.audio_input import MonoStream, array_stream, file_stream
from cadenza.analysis.chunks import ChunkedDecoder, TimedNote
from cadenza.analysis.options import GRIDS, TranscribeOptions
from cadenza.analysis.quantize import beat_quarters, fit_grid
from cadenza.analysis.transcription import Transcription

SILENCE_PEAK = 1e-4  # -80 dBFS: below this a recording is taken as silence
CLIPPED_WARNING = 1e-3  # a fraction of samples at full scale above this is reported
POLY_FRAME_S = 256 / 22050


class Transcriber:
    """The transcription models, each loaded on first use and kept: Basic Pitch's ONNX session (~0.1 s to
    load) for ``mode='poly'``, torchfcpe (~1.7 s) for ``mode='mono'``. ``threads``: CPU threads each may
    use (1 is fastest on a busy machine). Calls are serialised per model by a lock, so one Transcriber may
    be shared by threads."""

    def __init__(self, threads: int = 1, device: str = "cpu") -> None:
        self.threads = max(1, int(threads))
        self.device = device
        self._poly = None
        self._mono = None
        self._lock = threading.Lock()

    def poly_model(self):
        """The loaded `basic_pitch.BasicPitchModel` (MissingDependency when onnxruntime or basic-pitch is missing)."""
        if self._poly is None:
            from cadenza.analysis.basic_pitch import BasicPitchModel

            self._poly = BasicPitchModel(threads=self.threads)
        return self._poly

    def mono_tracker(self):
        """The loaded `pitch.PitchTracker` (MissingDependency without torchfcpe)."""
        if self._mono is None:
            from cadenza.analysis.pitch import PitchTracker

            self._mono = PitchTracker(self.device)
        return self._mono

    def model_info(self, mode: str) -> dict:
        """``{"model": name, "sha256": of its weights or None}`` of the model ``mode`` uses (loading it)."""
        if mode == "poly":
            model = self.poly_model()
            return {"model": "basic-pitch-icassp-2022", "sha256": model.sha256}
        return {"model": "torchfcpe", "sha256": None}

    def transcribe(self, samples: np.ndarray, sample_rate: int,
                   options: TranscribeOptions = TranscribeOptions()) -> Transcription:
        """Notes of ``samples`` (``[T]`` or ``[C, T]`` float32 in [-1, 1], channels mixed) at ``sample_rate`` Hz.

        Raises:
            InvalidConditioning: a bad shape, dtype or rate.
            CorruptInput: NaN or infinite samples.
            MissingDependency: the model ``options.mode`` needs is not installed.
        """
        rate = 22050 if options.mode == "poly" else 16000
        return self._run(array_stream(samples, sample_rate, rate), options)

    def transcribe_file(self, path: str | os.PathLike, options: TranscribeOptions = TranscribeOptions()) -> Transcription:
        """Notes of an audio file (WAV, FLAC, OGG, MP3, AIFF; M4A/AAC with PyAV), read in blocks.

        Raises:
            InputNotFound / CorruptInput: no such file, not audio, or NaN samples in it.
            MissingDependency: the model ``options.mode`` needs (or PyAV for M4A) is not installed.
        """
        rate = 22050 if options.mode == "poly" else 16000
        return self._run(file_stream(path, rate), options)

    def _run(self, stream: MonoStream, options: TranscribeOptions) -> Transcription:
        started = time.perf_counter()
        with self._lock:
            notes = self._poly_notes(stream, options) if options.mode == "poly" else self._mono_notes(stream, options)
        decoded = time.perf_counter()
        result = _assemble(notes, stream, options)
        result.timings_s.update({"decode": round(decoded - started, 3), "total": round(time.perf_counter() - started, 3)})
        return result

    def _poly_notes(self, stream: MonoStream, options: TranscribeOptions) -> list[TimedNote]:
        from cadenza.analysis.basic_pitch import Activations
        from cadenza.analysis.note_decoding import decode_notes, pitch_bends

        model = self.poly_model()
        min_frames = int(round(options.min_note_s / POLY_FRAME_S))

        def decode(act: Activations, claimed):
            found = decode_notes(act, options.onset_threshold, options.frame_threshold, min_frames,
                                 options.pitch_range, claimed)
            bends = pitch_bends(act.contour, found) if options.pitch_bends else [None] * len(found)
            return [(*note, bend) for note, bend in zip(found, bends)]

        chunk = int(options.chunk_s / POLY_FRAME_S)
        decoder = ChunkedDecoder(decode, Activations.concat, chunk, chunk // 4, POLY_FRAME_S)
        return _drain(decoder, model.activations(iter(stream)))

    def _mono_notes(self, stream: MonoStream, options: TranscribeOptions) -> list[TimedNote]:
        from cadenza.analysis.monophonic import MonoFrames, segment_notes, track_frames
        from cadenza.analysis.pitch import HOP, SAMPLE_RATE

        tracker = self.mono_tracker()
        frame_s = HOP / SAMPLE_RATE
        min_frames = int(round(options.min_note_s / frame_s))

        def decode(frames: MonoFrames, claimed):
            return segment_notes(frames, options.voicing_threshold, min_frames, options.pitch_range, claimed)

        chunk = int(options.chunk_s / frame_s)
        decoder = ChunkedDecoder(decode, MonoFrames.concat, chunk, chunk // 4, frame_s)
        with _torch_threads(self.threads):
            return _drain(decoder, track_frames(iter(stream), tracker))


def _drain(decoder: ChunkedDecoder, parts: Iterator) -> list[TimedNote]:
    notes: list[TimedNote] = []
    for part in parts:
        notes += decoder.push(part)
    return notes + decoder.finish()


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(before, threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _assemble(found: list[TimedNote], stream: MonoStream, options: TranscribeOptions) -> Transcription:
    """The `Transcription` of decoded notes: sorted, velocities, tempo, grid, key and a message."""
    from cadenza.analysis.key_tempo import key_from_notes, tempo_from_notes

    found = sorted(found, key=lambda n: (n[0], n[2]))
    notes = np.array([[on, off, pitch, np.clip(round(127 * amp), 1, 127)] for on, off, pitch, amp, _ in found],
                     dtype=np.float64).reshape(-1, 4)
    bends = tuple(b if b is not None else np.zeros(0, np.int64) for *_, b in found) if options.pitch_bends else ()
    duration = stream.duration_s
    clipped = stream.clipped / max(stream.frames_in, 1)
    meter = options.time_signature
    if options.tempo_bpm is not None:
        beat_bpm = options.tempo_bpm / beat_quarters(meter or "4/4")
    else:
        beat_bpm = tempo_from_notes(notes, duration)
    steps = GRIDS[options.grid] if options.quantize else 0
    grid = fit_grid(notes, beat_bpm, meter, steps, refine=options.tempo_bpm is None)
    key = key_from_notes(notes)
    return Transcription(notes, duration, grid.tempo_bpm, grid.time_signature, key.name if key else None, grid,
                         options.mode, bends, _message(notes, stream, options, clipped), stream.peak, clipped)


def _message(notes: np.ndarray, stream: MonoStream, options: TranscribeOptions, clipped: float) -> str | None:
    if stream.duration_s < options.min_note_s or stream.frames_in < 2:
        return (f"the recording is too short ({stream.duration_s * 1000:.1f} ms) to hold a note of "
                f"{options.min_note_s * 1000:.0f} ms: no notes")
    if stream.peak < SILENCE_PEAK:
        level = "-inf" if stream.peak == 0 else f"{20 * np.log10(stream.peak):.0f}"
        return f"the recording is silent (peak {level} dBFS): no notes"
    if notes.shape[0] == 0:
        hint = ("no pitched sound was found: is it one voice or instrument, loud enough over the noise?"
                if options.mode == "mono" else
                "no notes were found: the recording may be noise or unpitched (drums, speech); lower "
                "onset_threshold / frame_threshold to find quieter notes")
        return hint
    if clipped > CLIPPED_WARNING:
        return (f"the recording is clipped ({clipped:.1%} of its samples at full scale): some notes may be "
                "missing or wrong; record it quieter if you can")
    return None


def transcribe(samples: np.ndarray, sample_rate: int, options: TranscribeOptions = TranscribeOptions(),
               transcriber: Transcriber | None = None) -> Transcription:
    """Notes of ``samples [T]`` (or ``[C, T]``) float32 at ``sample_rate`` Hz; see `Transcriber.transcribe`.
    Pass a ``transcriber`` to reuse its loaded models."""
    return (transcriber or Transcriber()).transcribe(samples, sample_rate, options)


def transcribe_file(path: str | os.PathLike, options: TranscribeOptions = TranscribeOptions(),
                    transcriber: Transcriber | None = None) -> Transcription:
    """Notes of an audio file; see `Transcriber.transcribe_file`."""
    return (transcriber or Transcriber()).transcribe_file(path, options)
