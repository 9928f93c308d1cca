"""Our symbolic model and its ``LlamaForCausalLM`` twin give the same logits (the benchmark relies on it)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from cadenza.generators.symbolic.hf_parity import to_llama  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_llama_logits_match(make_tiny_model):
    ours = make_tiny_model(vocab_size=80, seed=3)
    hf = to_llama(ours)
    tokens = torch.randint(0, 80, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = ours(tokens)
        b = hf(tokens).logits
    assert b.shape == a.shape == (3, 40, 80)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-4)
    # A copy, not an alias: changing ours leaves the twin alone.
    with torch.no_grad():
        ours.norm.weight.add_(1.0)
    assert not torch.equal(hf.model.norm.weight, ours.norm.weight)


def test_llama_cached_generation_matches_our_greedy_decode(make_tiny_model):
    from cadenza.engine.decode import DecodeParams, decode

    ours = make_tiny_model(vocab_size=80, seed=4)
    hf = to_llama(ours)
    prompt = torch.randint(0, 80, (2, 6), generator=torch.Generator().manual_seed(1))
    mine = decode(ours, prompt, DecodeParams(max_new_tokens=12, temperature=0.0))
    with torch.no_grad():
        theirs = hf.generate(prompt, do_sample=False, max_new_tokens=12, min_new_tokens=12,
                             attention_mask=torch.ones_like(prompt))
    assert torch.equal(mine, theirs)
