"""The static-shape step, what CUDA runs by default and what CUDA graphs replay, checked on the CPU.

A static cache keeps every step's shapes fixed and its tensors at fixed addresses across calls, so a
compiled step is one graph, traced once. ``torch.compile`` with the ``eager`` backend checks exactly
that part (dynamo's tracing, graph breaks and recompiles) in milliseconds, without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode, decode_codebooks, decode_step
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMRunner


def one_graph_step():
    """``decode_step`` compiled as a single graph; a later recompile raises instead of passing quietly."""
    torch._dynamo.reset()
    return torch.compile(decode_step, backend="eager", fullgraph=True, dynamic=False)


@pytest.fixture
def no_recompiles():
    with torch._dynamo.config.patch(error_on_recompile=True):
        yield
    torch._dynamo.reset()


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
    assert model._spare_caches is None


def test_symbolic_static_step_is_one_graph_across_calls(make_tiny_model, no_recompiles):
    model = make_tiny_model(seed=2)
    step = one_graph_step()
    for seed in (0, 1, 2):  # new prompts, new positions, same graph
        assert torch.equal(symbolic_run(model, seed, step, static=True), symbolic_run(model, seed, static=True))


def codec_run(lm: CodecLM, seed: int, step_fn=decode_step, static: bool | None = None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    cond = lm.project_conditioning(torch.randn(1, 4, 6, generator=gen), torch.ones(1, 4, dtype=torch.bool))
    runner = CodecLMRunner(lm, cross=torch.cat([cond, torch.zeros_like(cond)]))  # a new runner per call
    prompt = torch.randint(0, 11, (1, 3, 2), generator=gen)
    params = DecodeParams(max_new_tokens=6, cfg_scale=3.0, top_k=5, pad_id=11, rng=torch.Generator().manual_seed(seed))
    return decode_codebooks(runner, prompt, params, uncond_prompt=prompt, step_fn=step_fn, cache_len=20, static=static)


def test_codec_static_path_matches_the_default(make_tiny_codec_lm):
    lm = make_tiny_codec_lm()
    for seed in (0, 1):
        assert torch.equal(codec_run(lm, seed, static=True), codec_run(lm, seed))


def test_codec_static_step_is_one_graph_across_calls(make_tiny_codec_lm, no_recompiles):
    lm = make_tiny_codec_lm()
    step = one_graph_step()
    for seed in (0, 1, 2):  # new text states each call, copied into the kept cross-attention tensors
        assert torch.equal(codec_run(lm, seed, step, static=True), codec_run(lm, seed, static=True))
    kept = lm._spare_cross[0][0]
    codec_run(lm, 3, step, static=True)
    assert lm._spare_cross[0][0] is kept


def test_codec_clear_cache_leaves_no_stale_conditioning(make_tiny_codec_lm):
    """Kept tensors are for reuse only: after a decode the model must not attend to the last text."""
    lm = make_tiny_codec_lm()
    codec_run(lm, 0, static=True)
    with torch.no_grad(), pytest.raises(RuntimeError, match="conditioning states"):
        lm(torch.zeros(1, 3, 2, dtype=torch.long))
