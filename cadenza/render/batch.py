"""Render one MIDI file, or a whole folder tree of them, to audio files.

A batch mirrors the input tree under the output folder, renders on a pool of worker processes that
each keep one ``FluidSynthRenderer`` (the SoundFont is loaded once per worker, not once per file),
resumes where a previous run stopped, and logs every file to a JSONL report as it finishes.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cadenza.errors import CadenzaError, InvalidConditioning, MissingDependency
from cadenza.render.audio_io import FORMATS, write_audio
from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions, check_available

MIDI_SUFFIXES = (".mid", ".midi")
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
class _Job:
    input: str
    output: str


def render_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: RenderOptions = RenderOptions(),
    *,
    renderer: FluidSynthRenderer | None = None,
) -> Path:
    """Render one MIDI file to ``output_path`` (.wav, .flac or .ogg, by suffix), atomically.

    Pass ``renderer`` to reuse a loaded SoundFont across calls; its options then apply.

    Raises:
        CorruptInput: the MIDI file is missing, empty, not MIDI, or has no notes.
        InvalidConditioning: the output suffix is not an audio format we write.
        MissingDependency: FluidSynth or a SoundFont is not installed.
    """
    out = Path(output_path)
    if out.suffix.lower() not in FORMATS:
        raise InvalidConditioning(f"cannot write audio to {out.name!r}; use one of {', '.join(FORMATS)}")
    _remove_stale_parts([out])
    if renderer is not None:
        _render_to(renderer, Path(input_path), out)
    else:
        with FluidSynthRenderer(options) as own:
            _render_to(own, Path(input_path), out)
    return out


def _render_to(renderer: FluidSynthRenderer, src: Path, out: Path) -> None:
    write_audio(out, renderer.render(src), renderer.options.sample_rate)


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
) -> BatchSummary:
    """Render every .mid/.midi file under ``input_dir`` (recursively, any letter case) into the same
    tree under ``output_dir``, as ``fmt`` files ("wav", "flac" or "ogg").

    Resumes: a file whose output exists and is newer than the input is skipped (outputs are written
    atomically, so an existing one is complete) unless ``force``. Unreadable inputs are reported and
    never stop the batch. Each file gets one JSON line in ``report_path`` (default
    ``<output_dir>/render_report.jsonl``, rewritten each run) with ``input``, ``output``, ``status``
    (ok | skipped | error), ``reason`` and ``seconds``, flushed as it finishes. ``workers`` processes
    render in parallel (1: in this process). The progress bar (files/s, ETA) goes to stderr.
    Worker processes are spawned, so a script calling this with ``workers > 1`` needs the usual
    ``if __name__ == "__main__":`` guard.

    Raises:
        InvalidConditioning: ``input_dir`` is not a folder or ``fmt`` is unknown.
        MissingDependency: FluidSynth or a SoundFont is not installed.
    """
    started = time.perf_counter()
    src, dst = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise InvalidConditioning(f"input folder not found: {src}")
    suffix = "." + fmt.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InvalidConditioning(f"unknown audio format {fmt!r}; use one of {', '.join(s[1:] for s in FORMATS)}")
    check_available(options)
    report = Path(report_path) if report_path is not None else dst / REPORT_NAME
    report.parent.mkdir(parents=True, exist_ok=True)

    inputs = find_midi_files(src)
    counts = {"ok": 0, "skipped": 0, "error": 0}
    with report.open("w", encoding="utf-8") as log:

        def record(entry: dict) -> None:
            counts[entry["status"]] += 1
            log.write(json.dumps(entry) + "\n")
            log.flush()  # a killed run keeps every line written so far

        jobs = []
        claimed: dict[Path, Path] = {}
        for path in inputs:
            out = dst / path.relative_to(src).with_suffix(suffix)
            entry = {"input": str(path), "output": str(out), "seconds": 0.0}
            if out in claimed:  # e.g. song.mid and song.MIDI side by side
                record(entry | {"status": "error", "reason": f"same output as {claimed[out]}"})
            elif not force and _up_to_date(path, out):
                record(entry | {"status": "skipped", "reason": "output is newer than input"})
            else:
                jobs.append(_Job(str(path), str(out)))
            claimed.setdefault(out, path)

        # Longest first (file size stands in for length): no worker is left alone with a long
        # piece at the end while the others sit idle.
        jobs.sort(key=lambda job: _size(job.input), reverse=True)
        _remove_stale_parts([Path(job.output) for job in jobs])
        bar = tqdm(total=len(jobs), unit="file", file=sys.stderr, disable=not progress, smoothing=0.1)
        with bar:
            for entry in _run(jobs, options, workers):
                record(entry)
                bar.update(1)
                bar.set_postfix(failed=counts["error"], refresh=False)

    seconds = time.perf_counter() - started
    return BatchSummary(
        ok=counts["ok"],
        skipped=counts["skipped"],
        failed=counts["error"],
        total=len(inputs),
        seconds=seconds,
        files_per_s=counts["ok"] / seconds if seconds > 0 else 0.0,
        report_path=report,
    )


def find_midi_files(folder: str | os.PathLike) -> list[Path]:
    """Every ``.mid``/``.midi`` file under ``folder`` (any letter case), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


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


def _remove_stale_parts(outputs: list[Path]) -> None:
    """Delete temporary files a killed run left beside ``outputs``. ``fileio.atomic_path`` names them
    ``.<name>.<random>.part<suffix>``; they are never taken for outputs, only clutter. Each folder is
    listed once, however many outputs it holds."""
    wanted: dict[Path, set[str]] = {}
    for out in outputs:
        wanted.setdefault(out.parent, set()).add(out.name)
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(".") and ".part" in name:
                # ".song.wav.k3j_x9.part.wav" -> "song.wav.k3j_x9" -> "song.wav"
                target = name[1:].rsplit(".part", 1)[0].rsplit(".", 1)[0]
                if target in names:
                    Path(entry.path).unlink(missing_ok=True)


def _run(jobs: list[_Job], options: RenderOptions, workers: int) -> Iterator[dict]:
    """Render ``jobs``, yielding one report entry per job as each finishes (any order)."""
    if not jobs:
        return
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        # One file or one worker: a process pool would only add start-up time.
        with FluidSynthRenderer(options) as renderer:
            for job in jobs:
                yield _render_job(renderer, job)
        return
    # spawn: workers start clean, safe whatever threads (torch, Gradio) the parent runs. A
    # ProcessPoolExecutor rather than multiprocessing.Pool: if a worker dies (a crash, the OOM killer)
    # its files fail with BrokenProcessPool instead of the batch waiting forever.
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(options,))
    try:
        futures = {pool.submit(_worker_task, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                entry = future.result()
            except BrokenProcessPool:
                entry = {"input": job.input, "output": job.output, "status": "error", "seconds": 0.0,
                         "reason": "BrokenProcessPool: a render worker died (crash or out of memory) "
                                   "before this file was done; run again to retry it"}
            if entry.pop("fatal", False):
                raise MissingDependency(f"a render worker could not start: {entry['reason']}")
            yield entry
    except BaseException:
        # Ctrl-C, a fatal start-up error, or the consumer stopped: drop the queued files now
        # instead of letting shutdown() render them all.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


# Set only inside pool worker processes, by _init_worker: one renderer per worker process is the
# whole point of the pool (the SoundFont loads once per worker). Never set in the parent process.
_worker_renderer: FluidSynthRenderer | None = None
_worker_error: str | None = None


def _init_worker(options: RenderOptions) -> None:
    global _worker_renderer, _worker_error
    _exit_with_parent()
    try:
        _worker_renderer = FluidSynthRenderer(options)
    except CadenzaError as e:
        # Raising here would break the pool, and every file would fail with a bare BrokenProcessPool:
        # the first task reports the real reason instead, and _run stops the batch with it.
        _worker_error = f"{type(e).__name__}: {e}"
        return
    if options.normalize_lufs is not None:
        import pyloudnorm  # noqa: F401  (imports scipy.signal, ~1.2 s: pay it at start-up, not mid-file)


def _exit_with_parent() -> None:
    """End this worker as soon as the parent process is gone. A parent killed outright (SIGTERM,
    SIGKILL, the OOM killer) never tells its pool, and workers would wait on their task queue forever.
    Leaving mid-file is safe: outputs are written atomically."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_task(job: _Job) -> dict:
    if _worker_renderer is None:
        return {"input": job.input, "output": job.output, "status": "error",
                "reason": _worker_error or "worker not initialised", "seconds": 0.0, "fatal": True}
    return _render_job(_worker_renderer, job)


def _render_job(renderer: FluidSynthRenderer, job: _Job) -> dict:
    """Render one job and describe the outcome; a failure is recorded, never raised, so one bad file
    cannot stop a batch."""
    started = time.perf_counter()
    entry = {"input": job.input, "output": job.output}
    try:
        _render_to(renderer, Path(job.input), Path(job.output))
    except Exception as e:  # noqa: BLE001 -- per-file isolation is the point; the reason goes to the report
        return entry | {"status": "error", "reason": f"{type(e).__name__}: {e}",
                        "seconds": round(time.perf_counter() - started, 4)}
    return entry | {"status": "ok", "reason": "", "seconds": round(time.perf_counter() - started, 4)}
