"""Batches of requests from a jobs file (``cadenza batch JOBS.jsonl -o DIR``, ``Studio.batch``).

`format` reads one line (a sidecar's shape plus ``output``) into a `Job`; `plan` checks every line up
front and skips jobs already done; `run` is what a worker does with a job. Any ``cadenza.runners``
runner runs them: the local process pool, or Ray on this machine or a cluster.
"""

from cadenza.jobs.format import KINDS, Job, parse_job
from cadenza.jobs.plan import BATCH_NOTE, is_done, plan_jobs
from cadenza.jobs.run import run_job

REPORT_NAME = "report.jsonl"

__all__ = ["BATCH_NOTE", "KINDS", "REPORT_NAME", "Job", "is_done", "parse_job", "plan_jobs", "run_job"]
