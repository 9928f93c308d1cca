"""What a batch worker does with one `Job`: make it, write it with its sidecar, and say how it went."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from cadenza.jobs.format import Job
from cadenza.jobs.plan import BATCH_NOTE
from cadenza.outputs import AudioOutput, MidiOutput
from cadenza.sidecars import RemakePlan


class Maker(Protocol):
    """What runs jobs: ``Studio.make`` (a worker's own Studio, its models loaded once and kept)."""

    def make(self, plan: RemakePlan) -> MidiOutput | AudioOutput: ...


def run_job(maker: Maker, job: Job) -> dict:
    """Make ``job`` and write its output and sidecar (atomically, the sidecar last, recording the job's key);
    return its report entry (``line``, ``kind``, ``input``, ``output``, ``seed``, ``status`` ok | error,
    ``reason``, ``seconds``). A failure is recorded, never raised: one bad job never stops a batch."""
    started = time.perf_counter()
    entry = {"line": job.line, "kind": job.kind, "input": job.input, "output": job.output, "seed": job.seed}
    try:
        output = maker.make(job.plan)
        made = output.provenance
        output = replace(output, provenance=replace(made, notes={**made.notes, BATCH_NOTE: job.key}))
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)
        output.save(job.output)
    except Exception as e:  # noqa: BLE001 -- per-job isolation is the point; the reason goes to the report
        return entry | {"status": "error", "reason": f"{type(e).__name__}: {e}",
                        "seconds": round(time.perf_counter() - started, 4)}
    return entry | {"status": "ok", "reason": "", "seconds": round(time.perf_counter() - started, 4)}
