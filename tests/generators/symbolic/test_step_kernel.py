"""The C++ one-token CPU step (``step_kernel.cpp``) against the Python lean step it replaces.

The kernel is built by ``scripts/setup.sh``; here ``build()`` is a no-op when it exists and compiles it
(about 30 s) when it does not. Without a C++ toolchain these tests skip, and generation uses Python.
"""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode
from cadenza.generators.symbolic import step_kernel
from cadenza.generators.symbolic.step import PythonStep

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def kernel_module(build_kernel_or_skip):
    return build_kernel_or_skip(step_kernel.KERNEL)


def steps(model, seq: torch.Tensor, t0: int, use_kernel: bool) -> torch.Tensor:
    """Logits of positions t0.. one token at a time, through the C++ step or the Python one."""
    b, t = seq.shape
    pos = torch.arange(t)
    with torch.inference_mode():
        model.setup_cache(b, t)
        try:
            assert not isinstance(model.step_impl, PythonStep)  # built, so setup_cache chose the C++ step
            model(seq[:, :t0], pos[:t0])
            run = model.step_impl
            if not use_kernel:  # the Python step on the same weights and caches
                run = PythonStep(model._step_weights)
                run.set_caches([layer.attn.kv_cache.kv for layer in model.layers])
            return torch.stack([run(seq[:, i], i) for i in range(t0, t)], 1)
        finally:
            model.clear_cache()


@pytest.mark.parametrize("batch", [1, 3])
def test_kernel_equals_the_python_step(make_tiny_model, kernel_module, batch):
    model = make_tiny_model(seed=5)
    seq = torch.randint(0, 64, (batch, 40), generator=torch.Generator().manual_seed(batch))
    fast, python = steps(model, seq, 6, True), steps(model, seq, 6, False)
    torch.testing.assert_close(fast, python, rtol=1e-5, atol=1e-4)
    assert torch.equal(fast.argmax(-1), python.argmax(-1))


def test_decode_uses_the_kernel_and_samples_the_same_tokens(make_tiny_model, kernel_module, monkeypatch):
    model = make_tiny_model(seed=6)
    prompt = torch.randint(0, 64, (2, 4), generator=torch.Generator().manual_seed(0))
    calls = []
    real = PythonStep.__call__
    monkeypatch.setattr(PythonStep, "__call__", lambda self, *a: calls.append(1) or real(self, *a))
    with_kernel = decode(model, prompt, DecodeParams(max_new_tokens=30, rng=torch.Generator().manual_seed(3)))
    assert not calls  # the C++ step ran every step
    model._step_weights = None  # rebuild the step, now without the kernel
    monkeypatch.setattr(step_kernel.KERNEL, "load", lambda: None)
    python = decode(model, prompt, DecodeParams(max_new_tokens=30, rng=torch.Generator().manual_seed(3)))
    assert len(calls) == 29 and isinstance(model._step_impl, PythonStep)
    assert torch.equal(with_kernel, python)


def test_kernel_follows_parameter_changes(make_tiny_model, kernel_module):
    model = make_tiny_model(seed=7)
    seq = torch.randint(0, 64, (1, 20), generator=torch.Generator().manual_seed(1))
    before = steps(model, seq, 4, True)
    with torch.no_grad():
        model.layers[0].attn.o_proj.weight.mul_(-1.0)
    after = steps(model, seq, 4, True)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, steps(model, seq, 4, False), rtol=1e-5, atol=1e-4)


def test_kernel_refuses_bad_inputs(make_tiny_model, kernel_module):
    model = make_tiny_model(seed=8)
    with torch.inference_mode():
        model.setup_cache(2, 16)
        kernel = model.step_impl
        with pytest.raises(RuntimeError, match="outside the cache"):
            kernel(torch.tensor([1, 2]), 16)
        with pytest.raises(RuntimeError, match="cache's B rows"):
            kernel(torch.tensor([1, 2, 3]), 0)
        with pytest.raises(RuntimeError, match="one cache per layer"):
            kernel.set_caches([model.layers[0].attn.kv_cache.kv])
        model.clear_cache()
        with pytest.raises(RuntimeError, match="set_caches first"):
            kernel(torch.tensor([1, 2]), 0)
    step = model._step_weights
    with pytest.raises(RuntimeError, match="contiguous float32"):
        kernel_module.SymbolicStep(step.embed.double(), [b.qkv for b in step.blocks], [b.o for b in step.blocks],
                                   [b.gate_up for b in step.blocks], [b.down for b in step.blocks], step.head,
                                   step.cos, step.sin, 4, 1e-3)


def test_a_model_with_a_kernel_can_be_copied(make_tiny_model, kernel_module):
    import copy

    model = make_tiny_model(seed=9)
    seq = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(2))
    before = steps(model, seq, 3, True)
    twin = copy.deepcopy(model)
    assert twin._step_impl is None and model._step_impl is not None
    torch.testing.assert_close(steps(twin, seq, 3, True), before)  # the copy builds its own kernel


def test_disabled_by_environment(make_tiny_model, monkeypatch):
    monkeypatch.setenv("CADENZA_CPU_KERNEL", "0")
    step_kernel.KERNEL.forget()
    try:
        assert step_kernel.KERNEL.load() is None
        model = make_tiny_model(seed=10)
        with torch.inference_mode():
            model.setup_cache(1, 8)
            assert isinstance(model.step_impl, PythonStep)  # the choice made at setup_cache
            model.clear_cache()
    finally:
        step_kernel.KERNEL.forget()
