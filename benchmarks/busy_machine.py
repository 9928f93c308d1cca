"""Busy machine: how much slower the built-in models get when other programs use the CPU.

For each built-in model (``musicgen-folk-small`` and ``diffusion-folk-small``: 8 s of audio;
``remi-folk-small``: 16 bars), the generate call (model loaded, one warm-up call first) is timed with the
machine as it is (``idle_s``) and while two CPU-bound processes run beside it (``busy_s``: spawned here,
each spinning one core, killed when the measurement ends and in any case after 15 minutes).
``slowdown`` = busy / idle, per model; the issue 20 target is <= 2.0 with two busy processes.

The models run on the default thread policy (one thread for small models; see README "Speed"). The full
run also times them on as many threads as the machine has cores (``all_cores``: torch's own default,
what they ran on before the policy), for comparison. Each figure is the median of the calls (5;
``--quick``: 2). ``load_average`` before the runs says how idle "idle" was.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

MODELS = {
    "musicgen-folk-small": {"duration_s": 8.0},
    "diffusion-folk-small": {"duration_s": 8.0},
    "remi-folk-small": {"bars": 16},
}
HOGS = 2
HOG_LIMIT_S = 900  # a hog left behind by a killed benchmark stops by itself
SPIN = f"import time\nend = time.time() + {HOG_LIMIT_S}\nwhile time.time() < end:\n    pass\n"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def busy(processes: int = HOGS) -> Iterator[None]:
    """``processes`` CPU-bound Python processes running for the duration of the block."""
    hogs = [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(processes)]
    try:
        time.sleep(0.5)  # let them start spinning
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(timeout=30)


def time_generate(studio, model: str, calls: int) -> float:
    """Median seconds of ``calls`` generate calls (seeded, so every call does the same work)."""
    from cadenza import Conditioning, Sampling

    conditioning = Conditioning(text="a jig on a fiddle", **MODELS[model]) if "remi" not in model \
        else Conditioning(**MODELS[model])
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        studio.generate(model, conditioning, Sampling(seed=1))
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure(threads: int | None, calls: int) -> dict:
    from cadenza import Studio

    studio = Studio(threads=threads)
    figures = {}
    for model in MODELS:
        time_generate(studio, model, 1)  # load and warm up
        idle = time_generate(studio, model, calls)
        with busy():
            loaded = time_generate(studio, model, calls)
        figures[model] = {"idle_s": round(idle, 3), "busy_s": round(loaded, 3), "slowdown": round(loaded / idle, 2)}
        log(f"threads {threads or 'by policy'}: {model}: {figures[model]}")
    return figures


def main(quick: bool) -> dict:
    for name in ("OMP_NUM_THREADS", "CADENZA_THREADS"):
        if os.environ.get(name):
            log(f"note: {name}={os.environ[name]} is set; the policy is measured with Studio's own choice")
    calls = 2 if quick else 5
    load = [round(x, 2) for x in os.getloadavg()]
    log(f"load average before: {load}; {HOGS} busy processes beside the model when busy")
    policy = measure(None, calls)
    result = {"slowdown": {m: f["slowdown"] for m, f in policy.items()}, "models": policy,
              "busy_processes": HOGS, "calls_per_figure": calls, "load_average_before": load, "cpus": os.cpu_count()}
    if not quick:
        cores = os.cpu_count() or 1
        all_cores = measure(cores, calls)
        result["all_cores"] = {"threads": cores, "models": all_cores,
                               "slowdown": {m: f["slowdown"] for m, f in all_cores.items()}}
    return result
