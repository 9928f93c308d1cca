"""The symbolic model's one-token CPU step as a C++ extension (``step_kernel.cpp``): ``KERNEL``.

At batch 1 the Python form of the step (``step.PythonStep``) spends ~0.6 ms of its ~1.4 ms on the
dispatch of ~190 small ops; the C++ step does those in plain loops and keeps only the matrix products
(MKL, at the cache's read speed) as ATen calls. The maths and the weights (``step.StepWeights``) are the
same; logits agree to float rounding (tested). ``step.make_step`` picks it at ``setup_cache``.
``scripts/setup.sh`` builds it (``python -m cadenza.generators.symbolic.step_kernel``, about 30 s; see
``cadenza.engine.cpp_kernel``); without a build, or with ``CADENZA_CPU_KERNEL=0``, the Python step runs.
"""

from pathlib import Path

from cadenza.engine.cpp_kernel import CppKernel

KERNEL = CppKernel(Path(__file__).with_name("step_kernel.cpp"), "cadenza_symbolic_step", "the C++ symbolic step")

if __name__ == "__main__":
    raise SystemExit(KERNEL.main())
