"""The symbolic model's one-token CPU step as a C++ extension (``step_kernel.cpp``): build once, then load.

At batch 1 the Python form of the step (``step.PythonStep``) spends ~0.6 ms of its ~1.4 ms on the
dispatch of ~190 small ops; the C++ step does those in plain loops and keeps only the matrix products
(MKL, at the cache's read speed) as ATen calls. The maths and the weights (``step.StepWeights``) are the
same; logits agree to float rounding (tested). ``step.make_step`` picks it at ``setup_cache``.

Built by ``scripts/setup.sh`` (``python -m cadenza.generators.symbolic.step_kernel``, about 30 s) through
``cadenza.engine.cpp_kernel``, never implicitly while generating; without a build, or with
``CADENZA_CPU_KERNEL=0``, the Python step runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from cadenza.engine.cpp_kernel import CppKernel, enabled

KERNEL = CppKernel(Path(__file__).with_name("step_kernel.cpp"), "cadenza_symbolic_step", "the C++ symbolic step")

__all__ = ["KERNEL", "build", "enabled", "load"]


def build(verbose: bool = False) -> ModuleType:
    """Compile the extension (a no-op when an up-to-date build exists) and return it."""
    return KERNEL.build(verbose)


def load() -> ModuleType | None:
    """The built extension, or None (not built, disabled, or it did not load)."""
    return KERNEL.load()


if __name__ == "__main__":
    sys.exit(KERNEL.main())
