"""Plan and report a batch render: a folder tree of MIDI files -> the same tree of audio files.

This module decides what to do and keeps the record; a ``cadenza.runners`` runner does the rendering
(``render.jobs``: each worker keeps one ``FluidSynthRenderer``, so the SoundFont loads once per
worker, not once per file). Planning mirrors the input tree under the output folder, resumes where a
previous run stopped, and logs every file to a JSONL report as it finishes; any runner (the local
process pool by default) plugs in without changing it.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cadenza.conditioning import MIDI_SUFFIXES
from cadenza.errors import InvalidConditioning
from cadenza.fileio import check_output_folder, shown
from cadenza.fileio.audio import FORMATS
from cadenza.render.fluidsynth import RenderOptions, check_available
from cadenza.render.jobs import RenderJob, remove_stale_parts, render_file, render_task
from cadenza.runners import Outcome, ProcessPoolRunner, Runner

__all__ = ["BatchPlan", "BatchSummary", "find_midi_files", "plan_batch", "render_batch", "render_file", "run_batch"]

REPORT_NAME = "render_report.jsonl"


@dataclass(frozen=True)
class BatchSummary:
    """What a batch did. ``ok + skipped + failed == total``; ``seconds`` is wall time and
    ``files_per_s`` counts files rendered (``ok``) per second of it."""

    ok: int
    skipped: int
    failed: int
    total: int
    seconds: float
    files_per_s: float
    report_path: Path


@dataclass(frozen=True)
class BatchPlan:
    """``jobs``: files to make, longest first. ``settled``: report entries decided without any work
    (skipped as up to date, or two inputs with one output). ``total``: input files found."""

    jobs: list
    settled: list[dict]
    total: int


def render_batch(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    options: RenderOptions = RenderOptions(),
    fmt: str = "wav",
    workers: int = 2,
    report_path: str | os.PathLike | None = None,
    progress: bool = True,
    force: bool = False,
    runner: Runner | None = None,
) -> BatchSummary:
    """Render every .mid/.midi file under ``input_dir`` (recursively, any letter case) into the same
    tree under ``output_dir``, as ``fmt`` files ("wav", "flac" or "ogg").

    Resumes: a file whose output exists and is newer than the input is skipped (outputs are written
    atomically, so an existing one is complete) unless ``force``. Unreadable inputs are reported and
    never stop the batch. Each file gets one JSON line in ``report_path`` (default
    ``<output_dir>/render_report.jsonl``, rewritten each run) with ``input``, ``output``, ``status``
    (ok | skipped | error), ``reason`` and ``seconds``, flushed as it finishes. The progress bar
    (files/s, ETA) goes to stderr. ``runner`` runs the renders (default: a ``ProcessPoolRunner`` of
    ``workers`` processes; 1 renders in this process). Its worker processes are spawned, so a script
    calling this with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.

    Raises:
        InvalidConditioning: ``input_dir`` is not a folder or ``fmt`` is unknown.
        MissingDependency: FluidSynth or a SoundFont is not installed.
    """
    started = time.perf_counter()
    src, dst = Path(input_dir), check_output_folder(output_dir)
    if not src.is_dir():
        raise InvalidConditioning(f"input folder not found: {shown(src)}")
    suffix = "." + fmt.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InvalidConditioning(f"unknown audio format {fmt!r}; use one of {', '.join(s[1:] for s in FORMATS)}")
    check_available(options)
    runner = runner if runner is not None else ProcessPoolRunner(workers)
    report = Path(report_path) if report_path is not None else dst / REPORT_NAME
    make_report_folder(report)

    return run_batch(render_task(options), plan_batch(src, dst, suffix, force=force), report, runner, progress,
                     started)


def run_batch(task, plan: BatchPlan, report: Path, runner: Runner, progress: bool, started: float,
              unit: str = "file") -> BatchSummary:
    """Run ``plan``'s jobs through ``runner`` with ``task`` (a `runners.Task`), writing one JSON line per
    job to ``report`` (the settled entries first, then each job's as it finishes, flushed), with a
    progress bar (``unit``s/s, ETA) on stderr; ``started``: ``time.perf_counter()`` when the batch began."""
    counts = {"ok": 0, "skipped": 0, "error": 0}
    with report.open("w", encoding="utf-8") as log:

        def record(entry: dict) -> None:
            counts[entry["status"]] += 1
            log.write(json.dumps(entry) + "\n")
            log.flush()  # a killed run keeps every line written so far

        for entry in plan.settled:
            record(entry)
        remove_stale_parts([Path(job.output) for job in plan.jobs])
        bar = tqdm(total=len(plan.jobs), unit=unit, file=sys.stderr, disable=not progress, smoothing=0.1)
        with bar:
            for outcome in runner.map(task, plan.jobs):
                record(_entry(outcome))
                bar.update(1)
                bar.set_postfix(failed=counts["error"], refresh=False)
    # a worker killed while writing leaves its temporary file; its job was retried under another name
    remove_stale_parts([Path(job.output) for job in plan.jobs])

    seconds = time.perf_counter() - started
    return BatchSummary(
        ok=counts["ok"],
        skipped=counts["skipped"],
        failed=counts["error"],
        total=plan.total,
        seconds=seconds,
        files_per_s=counts["ok"] / seconds if seconds > 0 else 0.0,
        report_path=report,
    )


def plan_batch(src: Path, dst: Path, suffix: str, *, force: bool = False, inputs: list[Path] | None = None,
               job=RenderJob) -> BatchPlan:
    """Mirror each input's path under ``dst`` with ``suffix`` ('.wav'), and sort the files into jobs
    (``job(input, output)``) and settled entries (see ``BatchPlan``). ``inputs``: files under ``src``
    (default: its MIDI files). Reads only file metadata."""
    inputs = find_midi_files(src) if inputs is None else inputs
    jobs: list = []
    settled: list[dict] = []
    claimed: dict[Path, Path] = {}
    for path in inputs:
        out = dst / path.relative_to(src).with_suffix(suffix)
        entry = {"input": str(path), "output": str(out), "seconds": 0.0}
        problem = link_problem(path)
        if problem is not None:  # reported, never silently left out
            settled.append(entry | {"status": "error", "reason": problem})
        elif out in claimed:  # e.g. song.mid and song.MIDI side by side
            settled.append(entry | {"status": "error", "reason": f"same output as {claimed[out]}"})
        elif not force and _up_to_date(path, out):
            settled.append(entry | {"status": "skipped", "reason": "output is newer than input"})
        else:
            jobs.append(job(str(path), str(out)))
        claimed.setdefault(out, path)
    # Longest first (file size stands in for length): no worker is left alone with a long piece at
    # the end while the others sit idle.
    jobs.sort(key=lambda job: _size(job.input), reverse=True)
    return BatchPlan(jobs, settled, len(inputs))


def find_midi_files(folder: str | os.PathLike) -> list[Path]:
    """Every ``.mid``/``.midi`` file under ``folder`` (any letter case), sorted by path, with the symbolic
    links among them that lead nowhere (a loop, a missing target: ``link_problem`` says which)."""
    return find_inputs(folder, MIDI_SUFFIXES)


def find_inputs(folder: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """Every file under ``folder`` whose suffix (any letter case) is one of ``suffixes``, sorted by path,
    and every symbolic link so named that leads nowhere, so that a batch reports it instead of leaving it
    out without a word. Links to folders are not followed (no folder is visited twice)."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.suffix.lower() in suffixes and (p.is_file() or link_problem(p) is not None))


def make_report_folder(report: Path) -> None:
    """Create the folder of a batch's report (OutputError when that cannot be done)."""
    from cadenza.fileio import output_error

    try:
        report.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(report.parent, exc) from exc


def link_problem(path: Path) -> str | None:
    """Why the symbolic link ``path`` leads to no file (a loop, a missing target), or None when it is no
    such link."""
    if not path.is_symlink():
        return None
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        return "SymlinkLoop: this symbolic link leads back to itself (a loop): nothing to read"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "SymlinkLoop: this symbolic link leads back to itself (a loop): nothing to read"
        return f"BrokenLink: this symbolic link points to {shown(os.readlink(path))}, which does not exist"
    return None if path.is_file() else "NotAFile: this symbolic link leads to a folder, not a file"


def _entry(outcome: Outcome) -> dict:
    if outcome.lost is None:
        return outcome.value
    job = outcome.job
    line = {"line": job.line} if hasattr(job, "line") else {}  # a jobs file's job: which line it was
    return {**line, "input": job.input, "output": job.output, "status": "error", "seconds": 0.0,
            "reason": f"WorkerLost: {outcome.lost}; run again to retry it"}


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # vanished since the scan: its render will report that
        return 0


def _up_to_date(src: Path, out: Path) -> bool:
    try:
        return out.stat().st_mtime_ns > src.stat().st_mtime_ns
    except FileNotFoundError:
        return False
