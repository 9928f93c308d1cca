"""The codec LM generator under a non-default DevicePolicy, on the CPU: what CUDA runs (bf16 LM, the step
compiled over a static cache sized for the longest window) checked without a GPU."""

from __future__ import annotations

import numpy as np
import torch

from cadenza import Conditioning, Sampling
from cadenza.engine.device import DevicePolicy
from cadenza.generators.codec_lm.generator import CodecLMGenerator
from cadenza.generators.codec_lm.loading import load_bundle
from cadenza.generators.codec_lm.release_dir import spec_for_release


def with_policy(release_dir, policy: DevicePolicy) -> CodecLMGenerator:
    spec = spec_for_release(release_dir, name="tiny-policy")
    return CodecLMGenerator(spec, load_bundle(spec), policy)


def test_bf16_policy_casts_the_lm_and_makes_audio(release_dirs):
    generator = with_policy(release_dirs["mono"], DevicePolicy(prefer="cpu", dtype=torch.bfloat16))
    assert next(generator.bundle.lm.parameters()).dtype == torch.bfloat16
    out = generator.generate(Conditioning(text="calm piano", duration_s=0.5), Sampling(seed=2))[0]
    assert out.samples.dtype == np.float32 and np.isfinite(out.samples).all() and np.abs(out.samples).max() > 0


def test_compiled_policy_reuses_one_graph_across_windows_and_calls(release_dirs, eager_backend_compile):
    generator = with_policy(release_dirs["mono"], DevicePolicy(prefer="cpu", compile=True))
    eager = with_policy(release_dirs["mono"], DevicePolicy(prefer="cpu"))
    window_s = generator.bundle.window_s
    # Longer than one window: sliding extension runs several windows through the same graph.
    cond = Conditioning(text="folk fiddle", duration_s=window_s * 1.5)
    first = generator.generate(cond, Sampling(seed=3))[0]
    again = generator.generate(cond, Sampling(seed=3))[0]
    assert len(first.provenance.notes["windows"]) >= 2
    assert np.array_equal(first.samples, again.samples)
    # The static path samples the same codes as the CPU default (same maths, fixed shapes).
    assert np.allclose(first.samples, eager.generate(cond, Sampling(seed=3))[0].samples, atol=1e-5)
