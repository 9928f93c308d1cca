"""A jobs file read into a batch plan: every line checked up front, done outputs skipped."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from cadenza.errors import CadenzaError, CorruptInput, InputNotFound
from cadenza.jobs.format import Job, parse_job
from cadenza.render.batch import BatchPlan

BATCH_NOTE = "batch_job"  # the sidecar's notes[BATCH_NOTE] is the key of the job that wrote it


def plan_jobs(jobs_file: str | os.PathLike, out_dir: str | os.PathLike, model_output: Callable[[str], str], *,
              force: bool = False) -> BatchPlan:
    """Read ``jobs_file`` (JSON lines; blank lines and lines starting with ``#`` are left out) into a
    `render.batch.BatchPlan` of `Job`s writing under ``out_dir``.

    Each line is checked before anything runs: one that cannot be made (bad JSON, an unknown field, a
    model not installed, a missing input file, two lines with one output) becomes an ``error`` entry
    with its line number, and the others still run. A job whose output is there with the sidecar its own
    request wrote (``notes.batch_job`` is its key) is ``skipped`` unless ``force``. The jobs are ordered
    by kind and model, so a worker keeps using the model it has loaded.

    Raises:
        InputNotFound / CorruptInput: the jobs file is missing or unreadable.
    """
    path, out = Path(jobs_file), Path(out_dir).absolute()
    if not path.is_file():
        raise InputNotFound(f"no jobs file {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptInput(f"cannot read the jobs file {path}: {exc}") from None
    base = path.absolute().parent
    known: dict[str, str] = {}

    def checked_model_output(name: str) -> str:  # each model looked up once, however many lines name it
        if name not in known:
            known[name] = model_output(name)
        return known[name]

    jobs: list[Job] = []
    settled: list[dict] = []
    claimed: dict[str, int] = {}
    total = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        total += 1
        try:
            job = parse_job(text, number, out, base, checked_model_output)
        except CadenzaError as exc:
            settled.append(_entry(number, "", "", "error", str(exc)))
            continue
        if job.output in claimed:
            settled.append(_entry(number, job.input, job.output, "error",
                                  f"line {number}: same output as line {claimed[job.output]}"))
            continue
        claimed[job.output] = number
        if not force and is_done(job):
            settled.append(_entry(number, job.input, job.output, "skipped", "done: its output and sidecar are there")
                           | {"kind": job.kind, "seed": job.seed})
        else:
            jobs.append(job)
    jobs.sort(key=lambda job: (job.kind, job.input if job.kind in ("generate", "transfer") else "", job.line))
    return BatchPlan(jobs, settled, total)


def is_done(job: Job) -> bool:
    """Whether ``job.output`` is there with the sidecar that ``job`` itself wrote (outputs are written before
    their sidecars, both atomically: a sidecar naming this job means its file is whole)."""
    try:
        notes = json.loads(Path(f"{job.output}.json").read_text(encoding="utf-8")).get("notes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(notes, dict) and notes.get(BATCH_NOTE) == job.key and os.path.isfile(job.output)


def _entry(line: int, source: str, output: str, status: str, reason: str) -> dict:
    return {"line": line, "input": source, "output": output, "status": status, "reason": reason, "seconds": 0.0}
