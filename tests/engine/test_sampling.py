"""Logit processors and the sampler: edge cases, masks, determinism and the sampled distribution."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.engine.sampling import (
    EmptyMask,
    apply_allowed_mask,
    apply_bias,
    apply_repetition_penalty,
    apply_temperature,
    sample,
    top_k_filter,
    top_p_filter,
)

INF = float("-inf")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_temperature_zero_and_tiny_are_greedy():
    logits = torch.tensor([[0.1, 3.0, 2.9, -1.0], [5.0, 0.0, 0.0, 4.99]])
    for t in (0.0, 1e-6, 1e-5):
        ids = sample(logits, gen(), temperature=t, top_k=3, top_p=0.5)
        assert ids.tolist() == [1, 0]
    assert torch.equal(apply_temperature(logits, 0.0), logits)
    assert torch.allclose(apply_temperature(logits, 2.0), logits / 2)


def test_top_k_edges():
    logits = torch.randn(3, 10, generator=gen())
    for k in (0, -1, 10, 11, 1000):
        assert torch.equal(top_k_filter(logits, k), logits)
    one = top_k_filter(logits, 1)
    assert (torch.isfinite(one).sum(-1) == 1).all()
    assert torch.equal(one.argmax(-1), logits.argmax(-1))
    three = top_k_filter(logits, 3)
    kept = torch.isfinite(three)
    assert (kept.sum(-1) == 3).all()
    assert torch.equal(three[kept], logits[kept])


def test_top_k_keeps_ties():
    logits = torch.tensor([[1.0, 2.0, 2.0, 0.0]])
    assert torch.isfinite(top_k_filter(logits, 2)).tolist() == [[False, True, True, False]]


def test_top_p_edges():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    assert torch.equal(top_p_filter(logits, 1.5), logits)
    assert torch.isfinite(top_p_filter(logits, 0.45)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.6)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.9)).tolist() == [[True, True, True, False]]
    # Always at least the top token, even for absurdly small p.
    assert torch.isfinite(top_p_filter(logits, 1e-9)).tolist() == [[True, False, False, False]]
    # Order in the vocabulary does not matter.
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.equal(top_p_filter(logits[:, perm], 0.6), top_p_filter(logits, 0.6)[:, perm])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.integers(0, 25), st.floats(0.01, 1.0), st.integers(0, 2**31 - 1))
def test_filters_always_keep_the_best_token(v, k, p, seed):
    logits = torch.randn(4, v, generator=gen(seed))
    out = top_p_filter(top_k_filter(logits, k), p)
    best = logits.argmax(-1)
    assert torch.isfinite(out.gather(1, best[:, None])).all()
    ids = sample(logits, gen(seed), temperature=0.7, top_k=k, top_p=p)
    assert torch.isfinite(out.gather(1, ids[:, None])).all()  # sampled ids survive the filters


def test_repetition_penalty_matches_hf_rule():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    seen_ids = torch.tensor([[0, 1, 1]])
    out = apply_repetition_penalty(logits, seen_ids, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5]]
    mask = torch.tensor([[True, True, False, False]])
    assert torch.equal(apply_repetition_penalty(logits, mask, 2.0), out)
    assert torch.equal(apply_repetition_penalty(logits, mask, 1.0), logits)
    assert logits.tolist() == [[2.0, -2.0, 1.0, 0.5]]  # inputs untouched
    with pytest.raises(ValueError):
        apply_repetition_penalty(logits, mask, 0.0)


def test_masks_and_bias():
    logits = torch.zeros(2, 4)
    allowed = torch.tensor([[True, False, False, True], [False, False, True, False]])
    out = apply_allowed_mask(logits, allowed)
    assert torch.isinf(out).tolist() == (~allowed).tolist()
    assert apply_allowed_mask(logits, None) is logits
    bias = torch.tensor([0.0, INF, 1.0, 0.0])
    assert apply_bias(logits, bias)[0].tolist() == [0.0, INF, 1.0, 0.0]
    # A single allowed token forces it, whatever the temperature.
    ids = sample(out, gen(), temperature=5.0, check=True)
    assert ids[1].item() == 2 and ids[0].item() in (0, 3)


def test_all_masked_row_raises_instead_of_nan():
    allowed = torch.ones(3, 5, dtype=torch.bool)
    allowed[1] = False
    logits = apply_allowed_mask(torch.randn(3, 5), allowed)
    with pytest.raises(EmptyMask, match=r"row\(s\) \[1\]"):
        sample(logits, gen(), check=True)
    with pytest.raises(EmptyMask):
        sample(logits, gen(), temperature=0.0, check=True)


def test_sample_is_deterministic_per_generator():
    logits = torch.randn(8, 50, generator=gen(1))
    a = sample(logits, gen(7), temperature=1.0)
    b = sample(logits, gen(7), temperature=1.0)
    c = torch.stack([sample(logits, gen(s)) for s in range(8, 16)])
    assert torch.equal(a, b)
    assert not (c == a).all(dim=1).all()


def test_sample_follows_the_distribution():
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1, 0.0])
    logits = probs.log().expand(40000, 5)
    ids = sample(logits, gen(3), temperature=1.0)
    freq = torch.bincount(ids, minlength=5).float() / ids.numel()
    assert torch.allclose(freq, probs, atol=0.01)
    # top-k renormalises over the kept tokens.
    ids = sample(logits, gen(4), top_k=2)
    freq = torch.bincount(ids, minlength=5).float() / ids.numel()
    assert torch.allclose(freq, torch.tensor([2 / 3, 1 / 3, 0, 0, 0]), atol=0.01)
    # High temperature flattens.
    ids = sample(logits[:, :4], gen(5), temperature=100.0)
    freq = torch.bincount(ids, minlength=4).float() / ids.numel()
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.02)
