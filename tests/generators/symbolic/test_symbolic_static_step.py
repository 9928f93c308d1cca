"""The symbolic model's static-shape step, what CUDA runs by default and what CUDA graphs replay,
checked on the CPU.

A static cache keeps every step's shapes fixed and its tensors at fixed addresses across calls, so a
compiled step is one graph, traced once. ``torch.compile`` with the ``eager`` backend checks exactly
that part (dynamo's tracing, graph breaks and recompiles) in milliseconds, without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode, decode_step

pytestmark = pytest.mark.usefixtures("one_thread")


def symbolic_run(model, seed: int, step_fn=decode_step, static: bool | None = None) -> torch.Tensor:
    prompt = torch.randint(0, model.vocab_size, (2, 5), generator=torch.Generator().manual_seed(seed))
    params = DecodeParams(max_new_tokens=12, top_k=8, rng=torch.Generator().manual_seed(seed))
    return decode(model, prompt, params, step_fn=step_fn, cache_len=32, static=static)


def test_symbolic_static_path_matches_the_default(make_tiny_model):
    model = make_tiny_model(seed=2)
    for seed in (0, 1):
        assert torch.equal(symbolic_run(model, seed, static=True), symbolic_run(model, seed))


def test_symbolic_static_cache_is_reused_between_calls(make_tiny_model):
    model = make_tiny_model(seed=2)
    model.setup_cache(2, 32, static=True)
    first = model.layers[0].attn.kv_cache.kv
    model.clear_cache()
    assert model.layers[0].attn.kv_cache is None
    model.setup_cache(2, 32, static=True)
    assert model.layers[0].attn.kv_cache.kv is first  # same tensor, same address: a CUDA graph stays valid
    model.clear_cache()
    model.setup_cache(3, 32, static=True)  # another shape: a fresh cache
    assert model.layers[0].attn.kv_cache.kv.shape[0] == 3
    model.clear_cache()
    model.setup_cache(2, 32)  # CPU default: not static, and nothing is kept
    model.clear_cache()
    assert model.kv_caches.spare is None


def test_symbolic_static_step_is_one_graph_across_calls(make_tiny_model, one_graph_step):
    model = make_tiny_model(seed=2)
    for seed in (0, 1, 2):  # new prompts, new positions, same graph
        compiled = symbolic_run(model, seed, one_graph_step, static=True)
        assert torch.equal(compiled, symbolic_run(model, seed, static=True))
