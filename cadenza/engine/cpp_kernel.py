"""C++ CPU kernels of the language models' one-token steps: build once, then load (shared by the families).

At batch 1 (or 2 under CFG) a one-token step of a small model is mostly per-op dispatch: a family may
ship its step as one C++ function (``<family>/step_kernel.cpp``) that keeps only the matrix products as
ATen calls and does the rest in plain loops. This module builds and loads such a source; the family
decides when to use it.

Building needs a C++ compiler and ninja (Debian: ``build-essential ninja-build``) and takes about 30 s a
kernel. It is never done implicitly while generating: ``scripts/setup.sh`` runs each family's
``python -m cadenza.generators.<family>.step_kernel`` once, which compiles into
``~/.cache/cadenza-kernels/<name>/`` (the name carries a hash of the source, the flags, the CPU, the torch
install and the Python version, so an upgrade or another environment builds its own). At run time
``CppKernel.load()`` imports that build if it exists; otherwise, or with ``CADENZA_CPU_KERNEL=0``, the
family's Python step runs.
"""

from __future__ import annotations

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
from torch import nn

# Built for this CPU (-march=native; the kernel name hashes the CPU's model and flags, so a cache dir shared
# between machines never hands one CPU another's code). -fopenmp-simd lets the sums vectorize
# (``#pragma omp simd reduction``) without -ffast-math.
CFLAGS = ("-O3", "-march=native", "-fopenmp-simd")
# What every step kernel shares (single-query attention over the KV cache, its checks): put before each source.
COMMON_SOURCE = Path(__file__).with_name("step_common.cpp")


def enabled() -> bool:
    """False when ``CADENZA_CPU_KERNEL=0`` asks for the Python steps."""
    return os.environ.get("CADENZA_CPU_KERNEL", "1") != "0"


def cpu_signature() -> str:
    """The CPU's model name and feature flags (what ``-march=native`` compiles for)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return platform.processor() + platform.machine()
    lines = cpuinfo.read_text(errors="replace").splitlines()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def parameters_key(module: nn.Module) -> tuple | None:
    """What identifies ``module``'s parameters' current values, so weights derived from them for a step
    are rebuilt when one changes; None when that cannot be known (inference tensors keep no version
    counter), which means "rebuild"."""
    params = list(module.parameters())
    if any(p.is_inference() for p in params):
        return None
    # In-place updates bump ``_version``; ``.to()`` or ``.data =`` change the storage pointer.
    return tuple((id(p), p.data_ptr(), p._version, p.dtype, p.device) for p in params)


class CppKernel:
    """One C++ source built as a torch extension: ``build`` compiles it, ``load`` imports the build.

    ``source``: the ``.cpp`` file (``COMMON_SOURCE`` goes before it); ``prefix``: the extension's name
    before its hash (``cadenza_symbolic_step``); ``what``: how messages name it ("the C++ symbolic step").
    """

    def __init__(self, source: Path, prefix: str, what: str) -> None:
        self.source, self.prefix, self.what = Path(source), prefix, what
        self._loaded: tuple[ModuleType | None] | None = None  # (module or None,) once load() has looked

    def name(self) -> str:
        """``<prefix>_<hash>``: changes with the source, the flags, the CPU, torch (version and install)
        and Python."""
        # torch's location too: two environments sharing one cache dir would otherwise rebuild over each other
        key = "\n".join([*self.sources(), " ".join(CFLAGS), cpu_signature(), torch.__version__, torch.__file__,
                         sys.version])
        return f"{self.prefix}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def sources(self) -> list[str]:
        """The texts compiled: the shared helpers, then the kernel's own source."""
        return [COMMON_SOURCE.read_text(), self.source.read_text()]

    def build_dir(self) -> Path:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza-kernels"
        return base / self.name()

    def build(self, verbose: bool = False) -> ModuleType:
        """Compile the extension (about 30 s; a no-op when an up-to-date build exists) and return it."""
        from torch.utils.cpp_extension import load_inline

        directory = self.build_dir()
        directory.mkdir(parents=True, exist_ok=True)
        module = load_inline(self.name(), cpp_sources=self.sources(), extra_cflags=list(CFLAGS),
                             build_directory=str(directory), verbose=verbose)
        self.forget()
        return module

    def forget(self) -> None:
        """Look again at the next ``load`` (after a build, or a change of ``CADENZA_CPU_KERNEL``)."""
        self._loaded = None

    def load(self) -> ModuleType | None:
        """The built extension, or None (not built, disabled, or it fails to load: a warning says why).
        Looked up once; ``forget`` looks again."""
        if self._loaded is None:
            self._loaded = (self._import(),)
        return self._loaded[0]

    def _import(self) -> ModuleType | None:
        if not enabled():
            return None
        name = self.name()
        path = self.build_dir() / f"{name}.so"
        if not path.is_file():
            return None
        try:
            loader = importlib.machinery.ExtensionFileLoader(name, str(path))
            spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
        except (ImportError, OSError) as exc:
            warnings.warn(f"{self.what} at {path} did not load ({exc}); using the Python step",
                          RuntimeWarning, stacklevel=3)
            return None
        return module

    def main(self) -> int:
        """``python -m`` entry point of a family's kernel module: build, report, 1 when it could not."""
        try:
            self.build()
        except Exception as exc:  # noqa: BLE001 - a missing compiler only costs speed: report it, do not fail setup
            print(f"[cadenza] {self.what} was not built ({type(exc).__name__}: {exc}); "
                  "the Python step will be used", file=sys.stderr)
            return 1
        print(f"[cadenza] built {self.what} in {self.build_dir()}")
        return 0
