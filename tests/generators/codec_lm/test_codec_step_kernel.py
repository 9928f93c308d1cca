"""The codec LM's C++ one-frame CPU step (``step_kernel.cpp``) against the module forward it replaces.

The kernel is built by ``scripts/setup.sh``; here ``build()`` is a no-op when it exists and compiles it
(about 30 s) when it does not. Without a C++ toolchain these tests skip, and generation uses the module.
"""

from __future__ import annotations

import copy

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode_codebooks
from cadenza.generators.codec_lm import step_kernel
from cadenza.generators.codec_lm.lm import CodecLMRunner

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def kernel_module(build_kernel_or_skip):
    return build_kernel_or_skip(step_kernel.KERNEL)


def lm_with_norms(make_tiny_codec_lm, seed: int = 0, **overrides):
    """A tiny model whose layer norms are not the identity (so the kernel's norms are really checked)."""
    lm = make_tiny_codec_lm(**overrides)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in lm.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=g))
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=g))
    return lm


def conditioning(lm, batch: int, seed: int = 0) -> dict:
    """Runner inputs: cross states (the second half all-zero, as CFG's unconditional rows) and a score."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    with torch.inference_mode():
        if lm.config.cross_attention:
            states = torch.randn(batch, 5, lm.config.cond_dim or lm.config.dim, generator=g)
            mask = torch.ones(batch, 5, dtype=torch.bool)
            mask[batch // 2:] = False
            out["cross"] = lm.project_conditioning(states, mask)
        if lm.config.score_dim:
            out["score"] = lm.score_inputs(torch.rand(batch, 12, lm.config.score_dim, generator=g), 40)
    return out


def step_logits(lm, seq: torch.Tensor, t0: int, use_kernel: bool, prefix: torch.Tensor | None = None,
                **inputs) -> torch.Tensor:
    """Logits ``[B, K, T - t0, card]`` of steps t0.. one frame at a time, through the kernel or the module."""
    b, _, t = seq.shape
    runner = CodecLMRunner(lm, prefix=prefix, **inputs)
    pos = torch.arange(t)
    with torch.inference_mode():
        runner.setup_cache(b, t)
        try:
            assert lm.step_impl is not None  # built, so setup_cache chose the C++ step
            if not use_kernel:
                lm.step_impl = None  # the module forward on the same caches
            runner(seq[..., :t0], pos[:t0])
            return torch.cat([runner(seq[..., i : i + 1], pos[i : i + 1]) for i in range(t0, t)], dim=2)
        finally:
            runner.clear_cache()


@pytest.mark.parametrize("batch", [1, 2])
def test_kernel_equals_the_module_forward(make_tiny_codec_lm, kernel_module, batch):
    lm = lm_with_norms(make_tiny_codec_lm, score_dim=7)
    seq = torch.randint(0, 12, (batch, 3, 30), generator=torch.Generator().manual_seed(batch))  # 11 = start/pad
    inputs = conditioning(lm, batch)
    fast, module = step_logits(lm, seq, 4, True, **inputs), step_logits(lm, seq, 4, False, **inputs)
    torch.testing.assert_close(fast, module, rtol=1e-5, atol=1e-5)
    assert torch.equal(fast.argmax(-1), module.argmax(-1))


def test_kernel_after_a_prefix_without_cross_attention_with_relu(make_tiny_codec_lm, kernel_module):
    """A prefix (MusicGen-melody's chroma) takes the first cache positions; then steps run in C++."""
    lm = lm_with_norms(make_tiny_codec_lm, seed=1, cross_attention=False, cond_dim=None, activation="relu",
                       positional_scale=0.5)
    seq = torch.randint(0, 12, (2, 3, 20), generator=torch.Generator().manual_seed(3))
    prefix = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(4))
    fast, module = step_logits(lm, seq, 2, True, prefix=prefix), step_logits(lm, seq, 2, False, prefix=prefix)
    torch.testing.assert_close(fast, module, rtol=1e-5, atol=1e-5)


def test_decode_uses_the_kernel_and_samples_the_same_codes(make_tiny_codec_lm, kernel_module, monkeypatch):
    lm = lm_with_norms(make_tiny_codec_lm, seed=2, score_dim=7)
    inputs = conditioning(lm, 4)
    prompt = torch.randint(0, 11, (2, 3, 3), generator=torch.Generator().manual_seed(0))
    fixed = torch.full((1, 3, 20), -1)
    fixed[:, 0] = torch.randint(0, 11, (20,), generator=torch.Generator().manual_seed(1))  # a sketch's codebook

    def run() -> torch.Tensor:
        params = DecodeParams(max_new_tokens=20, cfg_scale=3.0, top_k=5, pad_id=11, rng=torch.Generator().manual_seed(3))
        return decode_codebooks(CodecLMRunner(lm, **inputs), prompt, params, uncond_prompt=prompt, start_id=11,
                                fixed=fixed)

    calls = []
    real = type(lm.layers[0]).forward
    monkeypatch.setattr(type(lm.layers[0]), "forward", lambda self, *a: calls.append(1) or real(self, *a))
    with_kernel = run()
    assert len(calls) == lm.config.num_layers  # the prefill only: every step ran in C++
    monkeypatch.setattr(step_kernel.KERNEL, "load", lambda: None)
    lm._step_weights = None  # rebuild the step, now without the kernel
    module = run()
    assert lm._step_impl is None and len(calls) > 10 * lm.config.num_layers
    assert torch.equal(with_kernel, module)


def test_models_the_kernel_does_not_compute_use_the_module(make_tiny_codec_lm, kernel_module):
    for overrides in ({"bias_attn": True}, {"bias_ff": True}, {"norm_first": False}):
        lm = make_tiny_codec_lm(**overrides)
        with torch.inference_mode():
            lm.setup_cache(1, 8)
            assert lm.step_impl is None
            lm.clear_cache()
    lm = make_tiny_codec_lm()
    with torch.inference_mode():
        lm.setup_cache(1, 8, static=True)  # fixed shapes for a compiled step: the module's
        assert lm.step_impl is None
        lm.clear_cache()
        lm.setup_cache(1, 8, dtype=torch.bfloat16)
        assert lm.step_impl is None
        lm.clear_cache()


def test_kernel_follows_parameter_changes(make_tiny_codec_lm, kernel_module):
    lm = lm_with_norms(make_tiny_codec_lm, seed=4)
    seq = torch.randint(0, 11, (2, 3, 12), generator=torch.Generator().manual_seed(5))
    inputs = conditioning(lm, 2)
    before = step_logits(lm, seq, 2, True, **inputs)
    with torch.no_grad():
        lm.layers[1].linear2.weight.mul_(-1.0)
        lm.out_norm.bias.add_(0.5)
    after = step_logits(lm, seq, 2, True, **inputs)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, step_logits(lm, seq, 2, False, **inputs), rtol=1e-5, atol=1e-5)


def test_kernel_refuses_bad_inputs(make_tiny_codec_lm, kernel_module):
    lm = make_tiny_codec_lm()
    inputs = conditioning(lm, 2)
    with torch.inference_mode():
        lm.setup_cache(2, 16)
        kernel = lm.step_impl
        with pytest.raises(RuntimeError, match="set_cross first"):
            kernel(torch.zeros(2, 3, dtype=torch.long), 0, torch.empty(0))
        lm.set_cross_states(inputs["cross"])
        with pytest.raises(RuntimeError, match="outside the cache"):
            kernel(torch.zeros(2, 3, dtype=torch.long), 16, torch.empty(0))
        with pytest.raises(RuntimeError, match="out of range"):
            kernel(torch.full((2, 3), 12), 0, torch.empty(0))
        with pytest.raises(RuntimeError, match="cache's B rows"):
            kernel(torch.zeros(3, 3, dtype=torch.long), 0, torch.empty(0))
        with pytest.raises(RuntimeError, match="score must be"):
            kernel(torch.zeros(2, 3, dtype=torch.long), 0, torch.zeros(2, 5))
        with pytest.raises(RuntimeError, match="one cache per layer"):
            kernel.set_caches([lm.layers[0].self_attn.kv_cache.kv])
        lm.clear_cache()
        with pytest.raises(RuntimeError, match="set_caches first"):
            kernel(torch.zeros(2, 3, dtype=torch.long), 0, torch.empty(0))
    w = lm._step_weights
    with pytest.raises(RuntimeError, match="contiguous float32"):
        kernel_module.CodecStep(w.emb.double(), list(w.qkv), list(w.o), list(w.cross_q), list(w.cross_o), list(w.ff1),
                                list(w.ff2), list(w.norms), w.out_norm, w.heads, w.freq_div, 1.0, 2, True)


def test_a_model_with_a_kernel_can_be_copied(make_tiny_codec_lm, kernel_module):
    lm = lm_with_norms(make_tiny_codec_lm, seed=6)
    seq = torch.randint(0, 11, (2, 3, 10), generator=torch.Generator().manual_seed(7))
    inputs = conditioning(lm, 2)
    before = step_logits(lm, seq, 2, True, **inputs)
    twin = copy.deepcopy(lm)
    assert twin._step_impl is None and lm._step_impl is not None
    torch.testing.assert_close(step_logits(twin, seq, 2, True, **inputs), before)  # the copy builds its own


def test_disabled_by_environment(make_tiny_codec_lm, monkeypatch):
    monkeypatch.setenv("CADENZA_CPU_KERNEL", "0")
    step_kernel.KERNEL.forget()
    try:
        assert step_kernel.KERNEL.load() is None
        lm = make_tiny_codec_lm()
        with torch.inference_mode():
            lm.setup_cache(1, 8)
            assert lm.step_impl is None  # the choice made at setup_cache: the module forward
            lm.clear_cache()
    finally:
        step_kernel.KERNEL.forget()
