"""Shared pieces for the engine tests: tiny random models built in code, and the CUDA skip."""

from __future__ import annotations

import pytest
import torch

from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig, init_weights
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig


def pytest_collection_modifyitems(config, items):
    # The marker is registered in pyproject.toml; here tests marked ``cuda`` skip on CPU-only machines.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def tiny_transformer(vocab_size: int = 64, seed: int = 0, max_seq_len: int = 128) -> SymbolicTransformer:
    """A random 2-layer model, small enough that a decode takes milliseconds."""
    torch.manual_seed(seed)  # model init only; the decode tests pass explicit generators
    config = TransformerConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, ffn_dim=64,
                               max_seq_len=max_seq_len)
    model = SymbolicTransformer(config).eval()
    # Larger weights than the 0.02 init give peaked, distinguishable logits, so greedy comparisons
    # are not decided by float noise between near-equal candidates.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(20.0)
    return model


@pytest.fixture(autouse=True)
def one_thread():
    """Run each engine test on one CPU thread: on a busy 2-core box, 2 threads made tiny decodes ~20x
    slower (threads spin waiting for each other), and one thread keeps timings steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_model() -> SymbolicTransformer:
    return tiny_transformer()


@pytest.fixture
def make_tiny_model():
    """The ``tiny_transformer`` factory, for tests that need several sizes or seeds."""
    return tiny_transformer


def tiny_codec_lm(**overrides) -> CodecLM:
    """A random 2-layer codec LM (3 codebooks of 11 codes, cross-attention to 6-wide states by default)."""
    torch.manual_seed(0)
    config = CodecLMConfig(**{"n_q": 3, "card": 11, "dim": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32,
                              "cond_dim": 6, "max_seq_len": 64, **overrides})
    lm = CodecLM(config)
    init_weights(lm, std=0.3)
    return lm.eval()


@pytest.fixture
def make_tiny_codec_lm():
    """The ``tiny_codec_lm`` factory (keyword overrides of its config)."""
    return tiny_codec_lm
