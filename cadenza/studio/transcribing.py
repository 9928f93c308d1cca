"""`TranscribingMixin`: the `Studio` methods that hear a recording as notes (one file, or a folder of
them), on the studio's one `analysis.Transcriber`."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from cadenza.errors import UnsupportedConditioning
from cadenza.outputs import MidiOutput

if TYPE_CHECKING:
    from cadenza.analysis import TranscribeOptions, Transcriber
    from cadenza.render.batch import BatchSummary
    from cadenza.runners import Runner


class TranscribingMixin:
    """Transcription for `Studio`, which gives it ``_cache_lock``, ``_transcriber`` (None until first
    used), ``_threads``, ``_device`` and the method ``_check_length``."""

    _cache_lock: threading.Lock
    _transcriber: Transcriber | None
    _threads: int | None
    _device: str | None

    def transcribe(self, path: str | os.PathLike, options: TranscribeOptions | None = None,
                   **option_values) -> MidiOutput:
        """The notes of a recording (WAV, FLAC, OGG, MP3, AIFF, M4A) as MIDI, with a provenance sidecar.

        How, as keywords (all optional) or as one ``analysis.TranscribeOptions``: ``mode`` 'poly' (default:
        any number of notes at once, Basic Pitch) or 'mono' (one voice or instrument: f0 from torchfcpe);
        ``onset_threshold``, ``frame_threshold``, ``min_note_ms``, ``pitch_range=(low, high)``,
        ``pitch_bends``; ``quantize=True`` snaps notes to a ``grid`` ('1/16') in the detected (or given
        ``tempo_bpm`` / ``time_signature``) tempo and meter. The provenance's notes hold the tempo, meter,
        key, note count and, when no notes were found or the input is clipped, a ``message``. Any length:
        the file is read and transcribed in chunks.

        Raises:
            UnsupportedConditioning: an unknown option, or options given both ways.
            InvalidConditioning: an option out of range.
            CorruptInput: not a readable audio file, or NaN samples (InputNotFound: no such file).
            MissingDependency: onnxruntime/basic-pitch (poly) or torchfcpe (mono) is not installed.
        """
        from cadenza.analysis import TranscribeOptions
        from cadenza.analysis.output import transcription_output

        if options is not None and option_values:
            raise UnsupportedConditioning("give the transcription options as keywords or as one options object, not both")
        if options is None:
            options = TranscribeOptions.from_dict(option_values)
        self._check_length(path, "the recording to transcribe")
        transcriber = self.transcriber()
        result = transcriber.transcribe_file(path, options)
        return transcription_output(result, path, options, transcriber.model_info(options.mode))

    def transcriber(self) -> Transcriber:
        """This studio's `analysis.Transcriber` (its models load on first use and stay loaded), on
        ``threads`` CPU threads (default 1)."""
        with self._cache_lock:
            if self._transcriber is None:
                from cadenza.analysis import Transcriber

                self._transcriber = Transcriber(threads=self._threads or 1, device=self._device or "cpu")
            return self._transcriber

    def transcribe_batch(self, input_dir: str | os.PathLike, output_dir: str | os.PathLike,
                         options: TranscribeOptions | None = None, *, workers: int = 1, progress: bool = True,
                         force: bool = False, runner: Runner | None = None, **option_values) -> BatchSummary:
        """Transcribe every audio file under ``input_dir`` into the same tree of .mid files (each with its
        sidecar) under ``output_dir``: resume (finished files are skipped unless ``force``), a progress
        bar, and a JSONL report (``transcribe_report.jsonl``) of every file; a broken file is reported and
        never stops the batch. ``options`` as for ``transcribe``. ``workers`` processes (each loads the
        models once) or another ``runner``. See ``analysis.batch.transcribe_batch``.
        """
        from cadenza.analysis import TranscribeOptions
        from cadenza.analysis.batch import transcribe_batch

        if options is not None and option_values:
            raise UnsupportedConditioning("give the transcription options as keywords or as one options object, not both")
        if options is None:
            options = TranscribeOptions.from_dict(option_values)
        return transcribe_batch(input_dir, output_dir, options=options, workers=workers, progress=progress,
                                force=force, runner=runner, threads=self._threads or 1)
