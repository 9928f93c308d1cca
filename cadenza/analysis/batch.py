"""Transcribe a folder tree of recordings into the same tree of MIDI files, as ``render.batch`` renders
MIDI: resume, a JSONL report, atomic outputs, a broken file reported and never stopping the batch, and
any ``cadenza.runners`` runner (each worker loads the models once)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from cadenza.analysis.options import TranscribeOptions
from cadenza.conditioning import AUDIO_SUFFIXES
from cadenza.errors import InvalidConditioning
from cadenza.fileio import check_output_folder
from cadenza.render.batch import BatchSummary, find_inputs, make_report_folder, plan_batch, run_batch
from cadenza.runners import InlineRunner, ProcessPoolRunner, Runner, Task

REPORT_NAME = "transcribe_report.jsonl"


@dataclass(frozen=True)
class TranscribeJob:
    """One recording ``input`` -> MIDI file ``output`` (with its sidecar)."""

    input: str
    output: str


def transcribe_batch(input_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                     options: TranscribeOptions = TranscribeOptions(), workers: int = 1,
                     report_path: str | os.PathLike | None = None, progress: bool = True, force: bool = False,
                     runner: Runner | None = None, threads: int = 1) -> BatchSummary:
    """Transcribe every audio file under ``input_dir`` (``conditioning.AUDIO_SUFFIXES``, any letter case,
    recursively) into ``output_dir``/same/path.mid (+ .mid.json sidecar).

    A file whose .mid exists and is newer than the recording is skipped unless ``force``. Each file gets
    one JSON line in ``report_path`` (default ``<output_dir>/transcribe_report.jsonl``, rewritten each run):
    ``input``, ``output``, ``status`` (ok | skipped | error), ``reason``, ``seconds``, ``notes`` and
    ``message``, flushed as it finishes. ``runner`` runs the jobs (default: ``workers`` processes; 1 runs
    them here, one at a time, with ``threads`` CPU threads per model).

    Raises:
        InvalidConditioning: ``input_dir`` is not a folder.
        MissingDependency: the transcription model is not installed (before any file is read).
    """
    started = time.perf_counter()
    src, dst = Path(input_dir), check_output_folder(output_dir)
    if not src.is_dir():
        raise InvalidConditioning(f"input folder not found: {src}")
    report = Path(report_path) if report_path is not None else dst / REPORT_NAME
    make_report_folder(report)
    inputs = find_inputs(src, AUDIO_SUFFIXES)
    plan = plan_batch(src, dst, ".mid", force=force, inputs=inputs, job=TranscribeJob)
    if runner is None:
        runner = ProcessPoolRunner(workers) if workers != 1 else InlineRunner()  # refuses 0 or -4
    task = Task(setup=open_transcriber, run=transcribe_job, setup_args=(options, threads))
    return run_batch(task, plan, report, runner, progress, started)


def open_transcriber(options: TranscribeOptions, threads: int):
    """A worker's set-up: the transcriber with its model loaded (a missing model stops the batch here)."""
    from cadenza.analysis.transcriber import Transcriber

    transcriber = Transcriber(threads=threads)
    transcriber.model_info(options.mode)  # loads it
    return transcriber, options


def transcribe_job(state, job: TranscribeJob) -> dict:
    """Transcribe one file and describe the outcome; a failure is recorded, never raised."""
    from cadenza.analysis.output import transcription_output

    transcriber, options = state
    started = time.perf_counter()
    entry = {"input": job.input, "output": job.output}
    try:
        result = transcriber.transcribe_file(job.input, options)
        transcription_output(result, job.input, options, transcriber.model_info(options.mode)).save(job.output)
    except Exception as e:  # noqa: BLE001 -- per-file isolation is the point; the reason goes to the report
        return entry | {"status": "error", "reason": f"{type(e).__name__}: {e}",
                        "seconds": round(time.perf_counter() - started, 4)}
    return entry | {"status": "ok", "reason": "", "seconds": round(time.perf_counter() - started, 4),
                    "notes": len(result), "message": result.message}
