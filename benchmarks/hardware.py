"""What the decode benchmarks need to know about the machine they run on: a name for the device, a clock
that waits for the GPU, and the memory read bandwidth that bounds a batch-1 decode step (measured in the same
run, never a datasheet constant)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch


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
    write-allocate traffic that makes a CPU copy look slower."""
    src = torch.ones(max(2**20, int(nbytes)) // 4, dtype=torch.float32, device=device)
    src.sum()  # warm-up (and first touch of the pages)
    best = min(timed(src.sum, device) for _ in range(repeats))
    return src.numel() * 4 / best / 1e9


def bandwidth_fields(bytes_per_step: float, ours_ms_per_step: float, bandwidth_gbs: float) -> dict:
    """The figures that put a step time next to its memory-bandwidth limit."""
    limit_ms = bytes_per_step / (bandwidth_gbs * 1e9) * 1e3
    return {"bandwidth_gbs": round(bandwidth_gbs, 1), "bytes_per_step_mb": round(bytes_per_step / 1e6, 2),
            "limit_ms_per_step": round(limit_ms, 4), "ours_ms_per_step": round(ours_ms_per_step, 4),
            "fraction_of_limit": round(limit_ms / ours_ms_per_step, 3)}
