"""The codec LM's static-shape step, what CUDA runs by default and what CUDA graphs replay, checked
on the CPU: a static cache keeps the step's shapes and its tensors (cross-attention keys/values
included) fixed across calls, so a compiled step is one graph, traced once (``torch.compile`` with the
``eager`` backend checks that part in milliseconds, without a GPU).
"""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode_codebooks, decode_step
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMRunner

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_codec_static_step_is_one_graph_across_calls(make_tiny_codec_lm, one_graph_step):
    lm = make_tiny_codec_lm()
    for seed in (0, 1, 2):  # new text states each call, copied into the kept cross-attention tensors
        assert torch.equal(codec_run(lm, seed, one_graph_step, static=True), codec_run(lm, seed, static=True))
    kept = lm._spare_cross[0][0]
    codec_run(lm, 3, one_graph_step, static=True)
    assert lm._spare_cross[0][0] is kept


def test_codec_clear_cache_leaves_no_stale_conditioning(make_tiny_codec_lm):
    """Kept tensors are for reuse only: after a decode the model must not attend to the last text."""
    lm = make_tiny_codec_lm()
    codec_run(lm, 0, static=True)
    with torch.no_grad(), pytest.raises(RuntimeError, match="conditioning states"):
        lm(torch.zeros(1, 3, 2, dtype=torch.long))
