"""Cold start: wall time of ``cadenza generate`` from a fresh process, split into import, load and generate.

For each built-in model (``musicgen-folk-small`` and ``diffusion-folk-small``: 8 s of audio;
``remi-folk-small``: 16 bars to MIDI) the CLI runs in a new Python process pinned to one CPU core, with
``CADENZA_TIMINGS`` set, so it reports its own phases:

- ``import_s``: from the launch to the model load (the interpreter, Cadenza's CLI, and torch);
- ``load_s``: finding, verifying and building the model (the model libraries' imports included);
- ``generate_s`` and ``write_s``; ``wall_s``: the whole call as the launching process saw it (its
  ``exit_s`` is what is left: leaving the process).

``musicgen-folk-small CADENZA_CPU_KERNEL=0``: the codec LM again with its C++ one-frame step turned off
(the module forward every step), the in-run reference for the kernel. ``reference_import_torch_s``:
``python -c "import torch"`` the same way, in the same run (what any torch
program pays before its first line). Each figure is the median of the runs (3; ``--quick``: 1). The issue
20 targets: an audio model loads in <= 1.5 s and the whole call for 8 s of audio takes <= 5 s on one idle
core (``targets``). ``load_average`` says how idle the machine was: figures from a loaded machine are
upper bounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.paths import REPO

MODELS = {
    "musicgen-folk-small": ["--duration", "8", "-o", "out.wav"],
    "diffusion-folk-small": ["--duration", "8", "-o", "out.wav"],
    "remi-folk-small": ["--bars", "16", "-o", "out.mid"],
}
AUDIO = ("musicgen-folk-small", "diffusion-folk-small")
# label -> (model, environment): every model as shipped, then the codec LM without its C++ step (the
# reference for what the kernel saves, in the same run).
RUNS = {**{model: (model, None) for model in MODELS},
        "musicgen-folk-small CADENZA_CPU_KERNEL=0": ("musicgen-folk-small", {"CADENZA_CPU_KERNEL": "0"})}
LOAD_TARGET_S, WALL_TARGET_S = 1.5, 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def one_core() -> int | None:
    """The core the runs are pinned to (the last one this process may use), None where pinning is not
    available."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def child_env() -> dict[str, str]:
    """The environment of a run: this repository's Cadenza first on the path (whatever the current folder),
    no thread or timing settings inherited."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CADENZA_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_timed(args: list[str], cwd: Path, core: int | None, timings: bool,
              extra_env: dict[str, str] | None = None) -> tuple[float, dict]:
    """``(wall seconds, the CLI's own phase timings)`` of one fresh process running ``args``."""
    env = {**child_env(), **(extra_env or {})}
    launched = time.time()
    if timings:
        env["CADENZA_TIMINGS"] = repr(launched)
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          preexec_fn=pin, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr[-1500:]}")
    phases = {}
    for line in done.stderr.splitlines():
        if line.startswith('{"cadenza_timings_s"'):
            phases = json.loads(line)["cadenza_timings_s"]
    return wall, phases


def split(wall: float, phases: dict) -> dict:
    imported = phases.get("startup", 0.0) + phases.get("cli", 0.0) + phases.get("torch_import", 0.0)
    parts = {"import_s": imported, "load_s": phases.get("load", 0.0), "generate_s": phases.get("generate", 0.0),
             "write_s": phases.get("write", 0.0)}
    return {"wall_s": wall, **parts, "exit_s": max(0.0, wall - sum(parts.values()))}


def median_of(runs: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def main(quick: bool) -> dict:
    repeats = 1 if quick else 3
    core = one_core()
    log(f"pinned to core {core}; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        reference = statistics.median(run_timed(["-c", "import torch"], Path(tmp), core, False)[0]
                                      for _ in range(repeats))
        log(f"python -c 'import torch': {reference:.2f} s")
        models = {}
        for label, (model, extra_env) in RUNS.items():
            runs = []
            for _ in range(repeats):
                wall, phases = run_timed(["-m", "cadenza.app.cli", "generate", model, "--seed", "1", *MODELS[model]],
                                         Path(tmp), core, True, extra_env)
                runs.append(split(wall, phases))
            models[label] = median_of(runs)
            log(f"{label}: {models[label]}")
    targets = {model: {"load_le_1_5_s": models[model]["load_s"] <= LOAD_TARGET_S,
                       "wall_le_5_s": models[model]["wall_s"] <= WALL_TARGET_S} for model in AUDIO}
    return {"models": models, "reference_import_torch_s": round(reference, 3), "targets": targets,
            "runs_per_model": repeats, "pinned_core": core, "load_average": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count()}
