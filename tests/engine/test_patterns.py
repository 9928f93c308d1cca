"""The delay pattern: explicit layout, round trips, and validity masks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenza.engine.patterns import DelayPattern

PAD = -7


def test_build_layout_matches_musicgen():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]])  # [B=1, K=3, T=3]
    seq = DelayPattern(3).build(codes, PAD)
    assert seq.tolist() == [[
        [1, 2, 3, PAD, PAD],
        [PAD, 4, 5, 6, PAD],
        [PAD, PAD, 7, 8, 9],
    ]]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(0, 9))
def test_round_trip(b, k, t):
    codes = torch.randint(0, 100, (b, k, t))
    pattern = DelayPattern(k)
    seq = pattern.build(codes, PAD)
    assert seq.shape == (b, k, t + k - 1)
    assert torch.equal(pattern.revert(seq), codes)
    # valid_mask marks exactly the non-pad slots.
    assert torch.equal(pattern.valid_mask(t).expand_as(seq), seq != PAD)
    for step in range(seq.shape[-1]):
        assert torch.equal(pattern.valid(step, t), pattern.valid_mask(t)[:, step])


def test_single_codebook_is_identity():
    codes = torch.randint(0, 9, (2, 1, 5))
    assert torch.equal(DelayPattern(1).build(codes, PAD), codes)


def test_errors():
    with pytest.raises(ValueError):
        DelayPattern(0)
    with pytest.raises(ValueError, match="expected 2 codebooks"):
        DelayPattern(2).build(torch.zeros(1, 3, 4, dtype=torch.long), PAD)
    with pytest.raises(ValueError, match="shorter"):
        DelayPattern(4).revert(torch.zeros(1, 4, 2, dtype=torch.long))
