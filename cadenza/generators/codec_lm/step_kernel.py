"""The codec LM's one-frame CPU step as a C++ extension (``step_kernel.cpp``): ``KERNEL``.

``step.make_step`` picks it at ``setup_cache`` (see ``step.py`` for what it computes and when).
``scripts/setup.sh`` builds it (``python -m cadenza.generators.codec_lm.step_kernel``, about 30 s; see
``cadenza.engine.cpp_kernel``); without a build, or with ``CADENZA_CPU_KERNEL=0``, the module forward
runs every step.
"""

from pathlib import Path

from cadenza.engine.cpp_kernel import CppKernel

KERNEL = CppKernel(Path(__file__).with_name("step_kernel.cpp"), "cadenza_codec_lm_step", "the C++ codec LM step")

if __name__ == "__main__":
    raise SystemExit(KERNEL.main())
