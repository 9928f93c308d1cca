"""CodecLM on its own: training forward aligned with the codes, cache == full forward, engine decode."""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode_codebooks
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig, CodecLMRunner, init_weights


def tiny_lm(seed: int = 0, **overrides) -> CodecLM:
    torch.manual_seed(seed)
    config = CodecLMConfig(**{"n_q": 3, "card": 11, "dim": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32,
                              "cond_dim": 6, "max_seq_len": 64, **overrides})
    lm = CodecLM(config)
    init_weights(lm, std=0.3)
    return lm.eval()


def test_config_round_trips_and_validates():
    config = CodecLMConfig(n_q=8, card=5, dim=8, num_heads=2, num_layers=1, ffn_dim=8, delays=(0, 0, 1, 1, 2, 2, 3, 3))
    assert CodecLMConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="divisible"):
        CodecLMConfig(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="unknown"):
        CodecLMConfig.from_dict({"width": 3})


def test_forward_train_is_causal_in_pattern_order():
    """logits[:, k, t] may depend only on tokens the delay pattern places before (k, t)."""
    lm = tiny_lm()
    codes = torch.randint(0, 11, (1, 3, 6))
    states, mask = torch.randn(1, 4, 6), torch.ones(1, 4, dtype=torch.bool)
    logits = lm.forward_train(codes, states, mask)
    assert logits.shape == (1, 3, 6, 11)
    changed = codes.clone()
    changed[0, 1, 3] = (changed[0, 1, 3] + 1) % 11  # codebook 1, frame 3 sits at pattern step 4
    other = lm.forward_train(changed, states, mask)
    delays = lm.config.pattern.delays
    for k in range(3):
        for t in range(6):
            same = torch.allclose(logits[0, k, t], other[0, k, t], atol=1e-6)
            assert same == (t + delays[k] <= 3 + delays[1]), (k, t)


def test_loss_is_finite_and_masks():
    lm = tiny_lm()
    codes = torch.randint(0, 11, (2, 3, 5))
    logits = lm.forward_train(codes, torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool))
    full = CodecLM.loss(logits, codes)
    assert torch.isfinite(full)
    frames = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    assert not torch.isclose(CodecLM.loss(logits, codes, frames), full)
    full.backward()
    assert lm.emb[0].weight.grad is not None


def test_empty_condition_equals_zero_states():
    lm = tiny_lm()
    codes = torch.randint(0, 11, (1, 3, 4))
    states = torch.randn(1, 4, 6)
    a = lm.forward_train(codes, states, torch.zeros(1, 4, dtype=torch.bool))
    b = lm.forward_train(codes, torch.zeros(1, 4, 6), torch.zeros(1, 4, dtype=torch.bool))
    assert torch.allclose(a, b)


@pytest.mark.parametrize("with_prefix", [False, True])
def test_cached_steps_match_full_forward(with_prefix):
    lm = tiny_lm()
    seq = torch.randint(0, 12, (2, 3, 9))
    cross = lm.project_conditioning(torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool))
    prefix = torch.randn(2, 3, 16) if with_prefix else None
    with torch.no_grad():
        full = lm(seq, cross=cross, prefix=prefix)
        runner = CodecLMRunner(lm, cross=cross, prefix=prefix)
        runner.setup_cache(2, 9)
        parts = [runner(seq[..., :4], torch.arange(4))]
        for pos in range(4, 9):
            parts.append(runner(seq[..., pos : pos + 1], torch.tensor([pos])))
        runner.clear_cache()
    assert torch.allclose(torch.cat(parts, dim=2), full, atol=1e-5)


def test_decode_codebooks_through_runner_with_cfg():
    lm = tiny_lm()
    cond = lm.project_conditioning(torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool))
    cross = torch.cat([cond, torch.zeros_like(cond)])
    runner = CodecLMRunner(lm, cross=cross)
    prompt = torch.zeros(2, 3, 0, dtype=torch.long)
    params = DecodeParams(max_new_tokens=7, cfg_scale=3.0, top_k=5, pad_id=11, rng=torch.Generator().manual_seed(0))
    out = decode_codebooks(runner, prompt, params, uncond_prompt=prompt)
    again = decode_codebooks(runner, prompt, DecodeParams(max_new_tokens=7, cfg_scale=3.0, top_k=5, pad_id=11,
                                                          rng=torch.Generator().manual_seed(0)), uncond_prompt=prompt)
    assert out.shape == (2, 3, 7)
    assert int(out.max()) < 11 and int(out.min()) >= 0
    assert torch.equal(out, again)
