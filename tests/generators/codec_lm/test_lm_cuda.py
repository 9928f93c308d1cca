"""What runs on a GPU: the codec LM's static, CUDA-graphed step, compiled against eager and in bf16.

Marked ``cuda``: skipped on CPU-only machines (CI), run on a lent GPU with ``pytest -m cuda``.
"""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode_codebooks, decode_step
from cadenza.engine.device import DevicePolicy, pick_dtype
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMRunner

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("one_thread")]


def codec_run(lm: CodecLM, seed: int, step_fn) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    cond = lm.project_conditioning(torch.randn(1, 5, 8, generator=gen).cuda(), torch.ones(1, 5, dtype=torch.bool).cuda())
    runner = CodecLMRunner(lm, cross=torch.cat([cond, torch.zeros_like(cond)]))
    prompt = torch.zeros(1, 4, 0, dtype=torch.long, device="cuda")
    params = DecodeParams(max_new_tokens=24, cfg_scale=3.0, top_k=8, pad_id=32,
                          rng=torch.Generator("cuda").manual_seed(seed))
    return decode_codebooks(runner, prompt, params, uncond_prompt=prompt, step_fn=step_fn, cache_len=40)


CUDA_LM = dict(n_q=4, card=32, dim=64, num_heads=4, cond_dim=8, ffn_dim=128, max_seq_len=96)


def test_codec_graphed_step_matches_eager_on_cuda(make_tiny_codec_lm):
    """fp32, so compiled and eager agree token for token; the CUDA graph is replayed across calls."""
    lm = make_tiny_codec_lm(**CUDA_LM).cuda()
    step = DevicePolicy(prefer="cuda").maybe_compile(decode_step, "cuda")
    with torch.inference_mode():
        for seed in (0, 1, 2):
            assert torch.equal(codec_run(lm, seed, step), codec_run(lm, seed, decode_step))


def test_codec_bf16_graphed_decode_runs(make_tiny_codec_lm):
    lm = make_tiny_codec_lm(**CUDA_LM).cuda().to(pick_dtype("cuda"))
    step = DevicePolicy(prefer="cuda").maybe_compile(decode_step, "cuda")
    with torch.inference_mode():
        out = codec_run(lm, 0, step)
    assert out.shape == (1, 4, 24) and int(out.max()) < 32 and int(out.min()) >= 0
