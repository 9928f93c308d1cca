"""What the decode benchmarks need to know about the machine they run on: a name for the device, a clock
that waits for the GPU, and the memory read bandwidth that bounds a batch-1 decode step (measured in the same
run, never a datasheet constant)."""

from __future__ import annotations

import contextlib
import platform
import time
import warnings
from pathlib import Path

import torch

# On a GPU the working set of a small model fits in L2 and one reduction is shorter than a launch and a
# sync: measure HBM with at least this much, several reductions per clock reading.
CUDA_BANDWIDTH_BYTES = 2**30
CUDA_BANDWIDTH_INNER = 10


def device_name(device: torch.device) -> str:
    """``"NVIDIA H100 80GB HBM3"`` on CUDA; the CPU model from ``/proc/cpuinfo`` on CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


DTYPES = ("float32", "bfloat16", "float16")  # the choices of --dtype


def add_device_options(parser, default_device: str | None = None) -> None:
    """``--device``, ``--dtype`` and ``--compile``, as ``python -m benchmarks`` and the decode benchmarks'
    own command lines take them (``parser``: an argparse parser or argument group)."""
    import argparse

    parser.add_argument("--device", default=default_device, help="cpu (default) or cuda")
    parser.add_argument("--dtype", choices=DTYPES, help="default: float32 on CPU, bfloat16 on CUDA")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="compile our one-token step (default: on CUDA only, where it means CUDA graphs)")


def parse_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16``; None -> ``pick_dtype(device)`` (fp32 on CPU, bf16 on CUDA)."""
    from cadenza.engine.device import pick_dtype

    if name is None:
        return pick_dtype(device)
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def synchronize(device: torch.device) -> None:
    """Wait until the device has finished its queued work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds ``fn()`` takes, including the GPU work it queued."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def read_bandwidth_gbs(device: torch.device, nbytes: float, repeats: int = 20) -> float:
    """Best-of-``repeats`` read bandwidth in GB/s, with torch's current thread count, for a working set
    of ``nbytes``: the speed of summing a buffer that size over and over, as a decode step streams its
    weights over and over. The size matters: 21 MB of weights stay in a large CPU L3 cache (28 GB/s on
    one core of the Xeon VM) where 256 MB come from DRAM (16 GB/s). A reduction reads without the
    write-allocate traffic that makes a CPU copy look slower.

    On CUDA the buffer is at least ``CUDA_BANDWIDTH_BYTES`` (1 GiB: HBM, not the L2 cache) and each
    clock reading spans ``CUDA_BANDWIDTH_INNER`` reductions, so launch and sync costs do not count."""
    inner = 1
    if device.type == "cuda":
        nbytes, inner = max(nbytes, CUDA_BANDWIDTH_BYTES), CUDA_BANDWIDTH_INNER
    src = torch.ones(max(2**20, int(nbytes)) // 4, dtype=torch.float32, device=device)
    src.sum()  # warm-up (and first touch of the pages)

    def reductions():
        for _ in range(inner):
            src.sum()

    best = min(timed(reductions, device) for _ in range(repeats))
    return src.numel() * 4 * inner / best / 1e9


def check_close(what: str, logits: torch.Tensor, reference: torch.Tensor, fp32_tolerance: float) -> float:
    """Max |logits - reference|, raising ``RuntimeError`` above the tolerance of their dtype.

    fp32: ``fp32_tolerance``. bf16/fp16: 5% of the largest reference logit (at least 0.05): two
    implementations round differently at every layer (measured at 24 layers, d 1024: 0.03 on logits up
    to 3), while a model left on another device, in another dtype or with other weights is off by the
    size of the logits themselves."""
    diff = float((logits.float() - reference.float()).abs().max())
    if logits.dtype == torch.float32 and reference.dtype == torch.float32:
        tolerance = fp32_tolerance
    else:
        tolerance = 0.05 * max(1.0, float(reference.float().abs().max()))
    if not diff <= tolerance:  # also catches NaN
        raise RuntimeError(f"{what}: max logit difference {diff:.2e} above {tolerance:.2e} "
                           f"({logits.dtype} vs {reference.dtype})")
    return diff


@contextlib.contextmanager
def compile_fallbacks():
    """Collect the messages of ``maybe_compile`` falling back to eager (a "compiled" run that in fact ran
    eager must say so); every other warning is passed on as usual. Yields the list it fills."""
    fallbacks: list[str] = []
    with warnings.catch_warnings(record=True) as caught:  # the filters in force still apply
        try:
            yield fallbacks
        finally:
            fallbacks.extend(str(w.message) for w in caught
                             if issubclass(w.category, RuntimeWarning) and "torch.compile" in str(w.message))
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def cuda_graph_skips() -> int:
    """How many times inductor declined to use CUDA graphs for a compiled function in this process
    (mutated inputs, CPU tensors, dynamic shapes...); the reasons are logged with ``TORCH_LOGS=perf_hints``."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["cudagraph_skips"])


def bandwidth_fields(bytes_per_step: float, ours_ms_per_step: float, bandwidth_gbs: float) -> dict:
    """The figures that put a step time next to its memory-bandwidth limit."""
    limit_ms = bytes_per_step / (bandwidth_gbs * 1e9) * 1e3

    def figure(x: float) -> float:  # 4 significant digits: a slow step on a busy machine never rounds to 0
        return float(f"{x:.4g}")

    return {"bandwidth_gbs": figure(bandwidth_gbs), "bytes_per_step_mb": figure(bytes_per_step / 1e6),
            "limit_ms_per_step": figure(limit_ms), "ours_ms_per_step": figure(ours_ms_per_step),
            "fraction_of_limit": figure(limit_ms / ours_ms_per_step)}
