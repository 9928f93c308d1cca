"""The symbolic model's lean one-token CPU step against its general cached forward."""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode, decode_step

pytestmark = pytest.mark.usefixtures("one_thread")


def general_steps(model, seq: torch.Tensor, t0: int) -> torch.Tensor:
    """Logits of each position >= t0, one token at a time through the general (module) path:
    with gradients enabled the model does not take the lean step."""
    b, t = seq.shape
    pos = torch.arange(t)
    model.setup_cache(b, t)
    try:
        with torch.enable_grad():
            model(seq[:, :t0], pos[:t0])
            return torch.stack([model(seq[:, i : i + 1], pos[i : i + 1])[:, -1] for i in range(t0, t)], 1).detach()
    finally:
        model.clear_cache()


def lean_steps(model, seq: torch.Tensor, t0: int) -> torch.Tensor:
    b, t = seq.shape
    pos = torch.arange(t)
    with torch.inference_mode():
        model.setup_cache(b, t)
        try:
            model(seq[:, :t0], pos[:t0])
            assert model.step_impl is not None  # the one-token step is on for a float32 CPU model
            return torch.stack([decode_step(model, seq[:, i : i + 1], pos[i : i + 1]) for i in range(t0, t)], 1)
        finally:
            model.clear_cache()


def test_lean_step_equals_general_path(make_tiny_model):
    model = make_tiny_model(seed=3)
    seq = torch.randint(0, 64, (3, 40), generator=torch.Generator().manual_seed(0))
    lean, general = lean_steps(model, seq, 7), general_steps(model, seq, 7)
    torch.testing.assert_close(lean, general, rtol=1e-5, atol=1e-4)
    assert torch.equal(lean.argmax(-1), general.argmax(-1))


def test_step_weights_follow_parameter_changes(make_tiny_model):
    """The fused weights are derived copies: an in-place update or a dtype change must not leave
    the lean step running on stale weights."""
    model = make_tiny_model(seed=4)
    seq = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(1))
    before = lean_steps(model, seq, 5)
    built = model._step_weights
    assert torch.equal(lean_steps(model, seq, 5), before) and model._step_weights is built  # reused, not rebuilt
    with torch.no_grad():
        model.layers[1].mlp.up_proj.weight.mul_(-1.0)
        model.norm.weight.add_(0.5)
    after = lean_steps(model, seq, 5)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, general_steps(model, seq, 5), rtol=1e-5, atol=1e-4)

    model.double()  # not float32: the general path runs, with the same tokens
    p = seq[:, :5]
    out = decode(model, p, DecodeParams(max_new_tokens=12, temperature=0.0))
    assert model._step_weights is None
    assert torch.equal(out, decode(model.float(), p, DecodeParams(max_new_tokens=12, temperature=0.0)))


def test_state_dict_is_unchanged_by_the_lean_step(make_tiny_model):
    """Checkpoint format: fusing happens beside the parameters, never in the saved names."""
    model = make_tiny_model()
    keys = list(model.state_dict())
    decode(model, torch.zeros(1, 3, dtype=torch.long), DecodeParams(max_new_tokens=4, temperature=0.0))
    assert list(model.state_dict()) == keys
    assert "layers.0.attn.q_proj.weight" in keys and not any("kv" in k or "step" in k for k in keys)


def test_model_built_under_inference_mode_decodes():
    """Parameters created under ``inference_mode`` keep no version counter: the step weights are then
    rebuilt at every ``setup_cache`` instead of cached, and decoding still matches the general path."""
    from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig

    with torch.inference_mode():
        model = SymbolicTransformer(TransformerConfig(vocab_size=40, dim=32, n_layers=1, n_heads=2, ffn_dim=64)).eval()
    p = torch.zeros(1, 2, dtype=torch.long)
    out = decode(model, p, DecodeParams(max_new_tokens=6, temperature=0.0))
    seq = out.clone()
    with torch.inference_mode():
        full = model(seq)
    assert torch.equal(out[0, 2:], full[0, 1:-1].argmax(-1))
