"""Basic Pitch (Spotify, ICASSP 2022), the polyphonic transcription model, run from the ONNX file inside
its PyPI wheel with onnxruntime: no TensorFlow, and the ``basic_pitch`` package is never imported (its
``__init__`` probes for TensorFlow, CoreML and TFLite and logs a warning for each one missing).

The model reads 2 s windows of 22.05 kHz mono audio (43,844 samples) and writes, per 256-sample frame
(86.13 frames/s) and per piano key, the probability that a note sounds (``note``) and starts
(``onset``), plus a 1/3-semitone pitch salience (``contour``). Windows overlap by 30 frames; half of
the overlap is dropped on each side, as Basic Pitch does, and each kept frame gets its exact time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cadenza.errors import MissingDependency

SAMPLE_RATE = 22050
FFT_HOP = 256
WINDOW = 43844  # samples the model reads at a time: 2 s less one hop
WINDOW_FRAMES = 172  # frames it writes for them
OVERLAP_FRAMES = 30
HALF_OVERLAP = OVERLAP_FRAMES // 2 * FFT_HOP  # 3840 samples of zeros before the audio
HOP = WINDOW - OVERLAP_FRAMES * FFT_HOP  # 36164 samples between window starts
KEPT_FRAMES = WINDOW_FRAMES - OVERLAP_FRAMES  # 142 frames kept per window
MIDI_OFFSET = 21  # the lowest piano key, row 0 of note and onset
N_PITCHES = 88
CONTOUR_BINS_PER_SEMITONE = 3
SILENT = 1e-6  # a window whose peak is below this is not run: all its probabilities are 0

WHEEL = "basic-pitch"
MODEL_FILE = "basic_pitch/saved_models/icassp_2022/nmp.onnx"
INSTALL_HINT = "pip install onnxruntime && pip install --no-deps basic-pitch==0.4.0 (or pip install 'cadenza[transcribe]')"


@dataclass
class Activations:
    """The model's output for consecutive frames: ``note [F, 88]``, ``onset [F, 88]``, ``contour [F, 264]``
    probabilities (row ``p`` of note/onset is MIDI pitch ``p + 21``) and ``times_s [F]``, each frame's time
    in seconds from the start of the audio."""

    note: np.ndarray
    onset: np.ndarray
    contour: np.ndarray
    times_s: np.ndarray

    def __len__(self) -> int:
        return int(self.times_s.shape[0])

    @staticmethod
    def concat(parts: list[Activations]) -> Activations:
        if not parts:
            return Activations(np.zeros((0, N_PITCHES), np.float32), np.zeros((0, N_PITCHES), np.float32),
                               np.zeros((0, N_PITCHES * CONTOUR_BINS_PER_SEMITONE), np.float32), np.zeros(0))
        return Activations(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("note", "onset", "contour",
                                                                                       "times_s")))

    def slice(self, start: int, stop: int | None = None) -> Activations:
        return Activations(self.note[start:stop], self.onset[start:stop], self.contour[start:stop],
                           self.times_s[start:stop])


def model_path() -> Path:
    """The ONNX file inside the installed basic-pitch wheel (found without importing the package).

    Raises:
        MissingDependency: basic-pitch is not installed, or its wheel has no ONNX model.
    """
    from importlib import metadata

    try:
        path = Path(metadata.distribution(WHEEL).locate_file(MODEL_FILE))
    except metadata.PackageNotFoundError:
        raise MissingDependency(f"polyphonic transcription needs Basic Pitch's model: {INSTALL_HINT}") from None
    if not path.is_file():
        raise MissingDependency(f"the installed basic-pitch has no {MODEL_FILE}: {INSTALL_HINT}")
    return path


class BasicPitchModel:
    """The loaded ONNX session (``threads``: CPU threads it may use). Hold one and reuse it: loading takes
    ~0.1 s. ``run`` may be called from several threads at once (onnxruntime sessions are thread-safe).

    Raises:
        MissingDependency: onnxruntime or basic-pitch is missing.
    """

    INPUT = "serving_default_input_2:0"
    OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0")  # note, onset, contour

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependency(f"polyphonic transcription runs Basic Pitch with onnxruntime: {INSTALL_HINT}") from None
        self.path = Path(path) if path is not None else model_path()
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its graph-optimiser notices are not for users
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``windows [B, 43844]`` float32 -> ``(note [B, 172, 88], onset [B, 172, 88], contour [B, 172, 264])``."""
        out = self.session.run(list(self.OUTPUTS), {self.INPUT: windows[:, :, None].astype(np.float32, copy=False)})
        return out[0], out[1], out[2]

    def activations(self, blocks: Iterable[np.ndarray], batch: int = 4) -> Iterator[Activations]:
        """Run the model over a stream of 22.05 kHz mono ``blocks [n]`` (any sizes); yields `Activations`
        for consecutive frames, ``batch`` windows (~6.6 s) at a time, ending at the audio's end. Memory:
        one batch of windows, whatever the length of the stream."""
        buffer = np.zeros(HALF_OVERLAP, dtype=np.float32)
        base = 0  # index, in the zero-padded signal, of buffer[0]
        total = HALF_OVERLAP  # samples of the padded signal seen so far
        window_index = 0
        pending: list[tuple[int, np.ndarray]] = []
        for block in blocks:
            buffer = np.concatenate([buffer, block])
            total += block.shape[0]
            while window_index * HOP + WINDOW <= total:
                start = window_index * HOP - base
                pending.append((window_index, buffer[start:start + WINDOW]))
                window_index += 1
                if len(pending) == batch:
                    yield self._run_windows(pending, None)
                    pending = []
            keep_from = window_index * HOP - base
            buffer, base = buffer[keep_from:], base + keep_from
        audio_s = (total - HALF_OVERLAP) / SAMPLE_RATE
        while window_index * HOP < total:
            start = window_index * HOP - base
            chunk = buffer[start:start + WINDOW]
            pending.append((window_index, np.pad(chunk, (0, WINDOW - chunk.shape[0]))))
            window_index += 1
            if len(pending) == batch:
                yield self._run_windows(pending, audio_s)
                pending = []
        if pending:
            yield self._run_windows(pending, audio_s)

    def _run_windows(self, pending: list[tuple[int, np.ndarray]], audio_s: float | None) -> Activations:
        windows = np.stack([w for _, w in pending])
        loud = np.max(np.abs(windows), axis=1) >= SILENT
        note = np.zeros((len(pending), WINDOW_FRAMES, N_PITCHES), np.float32)
        onset = np.zeros_like(note)
        contour = np.zeros((len(pending), WINDOW_FRAMES, N_PITCHES * CONTOUR_BINS_PER_SEMITONE), np.float32)
        if loud.any():
            note[loud], onset[loud], contour[loud] = self.run(windows[loud])
        keep = slice(OVERLAP_FRAMES // 2, WINDOW_FRAMES - OVERLAP_FRAMES // 2)
        # Kept frame j of window w sits at sample w * HOP + j * FFT_HOP of the audio (the padding in front of
        # the audio is exactly the half overlap dropped from each window's start).
        times = np.concatenate([(index * HOP + np.arange(KEPT_FRAMES) * FFT_HOP) / SAMPLE_RATE for index, _ in pending])
        out = Activations(note[:, keep].reshape(-1, N_PITCHES), onset[:, keep].reshape(-1, N_PITCHES),
                          contour[:, keep].reshape(-1, contour.shape[-1]), times)
        if audio_s is not None:
            out = out.slice(0, int(np.searchsorted(times, audio_s, side="left")))
        return out
