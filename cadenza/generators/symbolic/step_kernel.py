"""The symbolic model's one-token CPU step as a C++ extension (``step_kernel.cpp``): build once, then load.

At batch 1 the Python form of the step (``step.PythonStep``) spends ~0.6 ms of its ~1.4 ms on the
dispatch of ~190 small ops; the C++ step does those in plain loops and keeps only the matrix products
(MKL, at the cache's read speed) as ATen calls. The maths and the weights (``step.StepWeights``) are the
same; logits agree to float rounding (tested). ``step.make_step`` picks it at ``setup_cache``.

Building needs a C++ compiler and ninja (Debian: ``build-essential ninja-build``) and takes about 30 s.
It is never done implicitly while generating: ``scripts/setup.sh`` runs ``python -m
cadenza.generators.symbolic.step_kernel`` once, which compiles into
``~/.cache/cadenza-kernels/<name>/`` (the name carries a hash of the source, the flags, the CPU, the torch
install and the Python version, so an upgrade or another environment builds its own). At run time ``load()`` imports that build if it exists;
otherwise, or with ``CADENZA_CPU_KERNEL=0``, the Python step runs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).with_name("step_kernel.cpp")
# Built for this CPU (-march=native; the kernel name hashes the CPU's model and flags, so a cache dir shared
# between machines never hands one CPU another's code). -fopenmp-simd lets the sums vectorize
# (``#pragma omp simd reduction``) without -ffast-math.
CFLAGS = ("-O3", "-march=native", "-fopenmp-simd")


def _cpu_signature() -> str:
    """The CPU's model name and feature flags (what ``-march=native`` compiles for)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return platform.processor() + platform.machine()
    lines = cpuinfo.read_text(errors="replace").splitlines()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def kernel_name() -> str:
    """``cadenza_symbolic_step_<hash>``: changes with the source, the flags, the CPU, torch (version and
    install) and Python."""
    # torch's location too: two environments sharing one cache dir would otherwise rebuild over each other
    key = "\n".join([SOURCE.read_text(), " ".join(CFLAGS), _cpu_signature(), torch.__version__, torch.__file__,
                     sys.version])
    return f"cadenza_symbolic_step_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def build_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza-kernels"
    return base / kernel_name()


def enabled() -> bool:
    """False when ``CADENZA_CPU_KERNEL=0`` asks for the Python step."""
    return os.environ.get("CADENZA_CPU_KERNEL", "1") != "0"


def build(verbose: bool = False) -> ModuleType:
    """Compile the extension (about 30 s; a no-op when an up-to-date build exists) and return it."""
    from torch.utils.cpp_extension import load_inline

    directory = build_dir()
    directory.mkdir(parents=True, exist_ok=True)
    module = load_inline(kernel_name(), cpp_sources=[SOURCE.read_text()], extra_cflags=list(CFLAGS),
                         build_directory=str(directory), verbose=verbose)
    load.cache_clear()
    return module


@functools.cache
def load() -> ModuleType | None:
    """The built extension, or None (not built, disabled, or it fails to load: a warning says why)."""
    if not enabled():
        return None
    name = kernel_name()
    path = build_dir() / f"{name}.so"
    if not path.is_file():
        return None
    try:
        loader = importlib.machinery.ExtensionFileLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except (ImportError, OSError) as exc:
        warnings.warn(f"the C++ symbolic step at {path} did not load ({exc}); using the Python step",
                      RuntimeWarning, stacklevel=2)
        return None
    return module


def main() -> int:
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - a missing compiler only costs speed: report it, do not fail setup
        print(f"[cadenza] the C++ symbolic step was not built ({type(exc).__name__}: {exc}); "
              "the Python step will be used", file=sys.stderr)
        return 1
    print(f"[cadenza] built the C++ symbolic step in {build_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
