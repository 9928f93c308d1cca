"""Where and how the engine runs: device choice, dtype, CPU threads, and whether to compile the step.

One frozen ``DevicePolicy`` per model load decides all four, so the decode and denoise loops contain
no device logic of their own.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import torch

from cadenza.errors import DeviceUnavailable

F = TypeVar("F", bound=Callable)


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), else cuda > mps > cpu.

    A preferred device that is not available raises, rather than silently running elsewhere.
    """
    if prefer:
        try:
            device = torch.device(prefer)
        except RuntimeError as err:
            raise DeviceUnavailable(f"{prefer!r} is not a device name; use cpu, cuda, cuda:N or mps") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {prefer!r} was asked for, but no CUDA GPU is available")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"device {prefer!r} was asked for, but this machine has "
                                    f"{torch.cuda.device_count()} CUDA GPU(s)")
        if device.type == "mps" and not _mps_available():
            raise DeviceUnavailable(f"device {prefer!r} was asked for, but MPS is not available")
        if device.type not in ("cpu", "cuda", "mps"):
            raise DeviceUnavailable(f"device {prefer!r} is not supported; use cpu, cuda, cuda:N or mps")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on CUDA when the GPU supports it, else fp16; fp16 on MPS; fp32 on CPU.

    CPU stays fp32: it keeps results identical to the parity references, and this CPU's bf16 matmuls at
    batch 1 were slower than fp32 (1.49 vs 0.78 ms for the symbolic model's weights, one thread).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once); at least 1."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores: set[str] = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:  # no sysfs (macOS, containers): count logical CPUs instead
            cores.add(str(cpu))
    return max(1, len(cores))


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op CPU threads to ``n`` (default: physical cores); returns the count set.

    Deliberate because torch's default (all logical CPUs) oversubscribes small machines: on 2 busy
    cores, 2 threads can be slower than 1.
    """
    n = physical_cores() if n is None else max(1, int(n))
    torch.set_num_threads(n)
    return n


def maybe_compile(fn: F, *, enabled: bool, mode: str | None = None, fullgraph: bool = False) -> F:
    """``torch.compile(fn)`` when ``enabled``, falling back to eager ``fn`` if compiling fails.

    Compilation happens lazily at the first call, so the fallback is decided there: a failure warns
    (with the reason) and every later call runs eager. An error that eager ``fn`` raises too is then
    raised from eager, so real bugs are never hidden by the fallback.
    """
    if not enabled:
        return fn
    try:
        compiled = torch.compile(fn, mode=mode, fullgraph=fullgraph)
    except RuntimeError as err:  # e.g. an unsupported Python version or platform
        warnings.warn(f"torch.compile unavailable, running eager: {err}", RuntimeWarning, stacklevel=2)
        return fn
    state = {"use": compiled}

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if state["use"] is fn:
            return fn(*args, **kwargs)
        try:
            return state["use"](*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any compiler failure means "run eager"; we warn below
            state["use"] = fn
            warnings.warn(f"torch.compile failed, running eager from now on: {type(err).__name__}: {err}",
                          RuntimeWarning, stacklevel=2)
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def inference(fn: F) -> F:
    """Run ``fn`` under ``torch.inference_mode`` (cheapest per-op overhead) but return an ordinary tensor.

    Inference tensors cannot be modified in place outside inference mode, a surprise for a caller that
    post-edits generated tokens; one clone of the result costs far less than the loop saves.
    """

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        return out.clone()

    return run  # type: ignore[return-value]


@dataclass(frozen=True)
class DevicePolicy:
    """How a model runs. ``None`` fields mean "decide from the machine".

    - ``prefer``: device string, or None for cuda > mps > cpu.
    - ``dtype``: weights/activations dtype, or None for ``pick_dtype``.
    - ``threads``: CPU intra-op threads, or None for physical cores.
    - ``compile``: compile the one-token step; None means on CUDA only (on CPU eager is the default,
      since compile time rarely pays back for short generations there).
    - ``compile_mode``: ``torch.compile`` mode; None picks ``"reduce-overhead"`` (CUDA graphs) on CUDA.
    """

    prefer: str | None = None
    dtype: torch.dtype | None = None
    threads: int | None = None
    compile: bool | None = None
    compile_mode: str | None = None

    def device(self) -> torch.device:
        return pick_device(self.prefer)

    def dtype_for(self, device: torch.device | str) -> torch.dtype:
        return self.dtype or pick_dtype(device)

    def apply_threads(self) -> int:
        """Set the CPU thread count (process-wide in torch); returns it."""
        return set_threads(self.threads)

    def should_compile(self, device: torch.device | str) -> bool:
        return self.compile if self.compile is not None else torch.device(device).type == "cuda"

    def maybe_compile(self, fn: F, device: torch.device | str | None = None) -> F:
        """``fn`` compiled if this policy says so for ``device`` (default: ``self.device()``)."""
        device = torch.device(device) if device is not None else self.device()
        mode = self.compile_mode
        if mode is None and device.type == "cuda":
            mode = "reduce-overhead"
        return maybe_compile(fn, enabled=self.should_compile(device), mode=mode)
