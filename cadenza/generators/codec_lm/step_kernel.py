"""The codec LM's one-frame CPU step as a C++ extension (``step_kernel.cpp``): build once, then load.

Built by ``scripts/setup.sh`` (``python -m cadenza.generators.codec_lm.step_kernel``, about 30 s) through
``cadenza.engine.cpp_kernel``, never implicitly while generating; without a build, or with
``CADENZA_CPU_KERNEL=0``, the model's own forward runs every step. ``step.make_step`` picks it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from cadenza.engine.cpp_kernel import CppKernel, enabled

KERNEL = CppKernel(Path(__file__).with_name("step_kernel.cpp"), "cadenza_codec_lm_step", "the C++ codec LM step")

__all__ = ["KERNEL", "build", "enabled", "load"]


def build(verbose: bool = False) -> ModuleType:
    """Compile the extension (a no-op when an up-to-date build exists) and return it."""
    return KERNEL.build(verbose)


def load() -> ModuleType | None:
    """The built extension, or None (not built, disabled, or it did not load)."""
    return KERNEL.load()


if __name__ == "__main__":
    sys.exit(KERNEL.main())
