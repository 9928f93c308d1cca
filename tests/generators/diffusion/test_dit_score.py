"""The DiT reads a score beside the latent: widened from a text-only model it starts identical, and the
score path receives gradients from the first step (a zero projection feeding zero columns never would)."""

from __future__ import annotations

import torch

from cadenza.generators.diffusion.model import DiTConfig, LatentDiT, widen_for_score
from cadenza.music.score_roll import SCORE_DIM


def models():
    torch.manual_seed(0)
    text_only = LatentDiT(DiTConfig(layers=2, max_seconds=8.0))
    scored = LatentDiT(DiTConfig(layers=2, max_seconds=8.0, score_dim=SCORE_DIM))
    widen_for_score(scored, text_only.state_dict())
    return text_only, scored


def inputs(model):
    cond = model.conditions(torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool), torch.randn(2, 384),
                            torch.tensor([8.0, 8.0]))
    score = torch.zeros(2, 51, SCORE_DIM)
    score[:, :, -1] = 1
    score[:, 10:30, 40] = 1
    return torch.randn(2, 64, 51), torch.rand(2), {k: v.detach() for k, v in cond.items()}, score


def test_a_widened_model_starts_as_the_text_only_one():
    text_only, scored = models()
    x, t, cond, score = inputs(text_only)
    expected = text_only(x, t, cond)
    assert torch.allclose(scored(x, t, cond), expected, atol=1e-6)
    assert torch.allclose(scored(x, t, {**cond, "score": score}), expected, atol=1e-6)


def test_the_score_path_learns_from_the_first_step():
    _, scored = models()
    x, t, cond, score = inputs(scored)
    scored(x, t, {**cond, "score": score}).pow(2).mean().backward()
    assert scored.dit.proj_in.weight.grad[:, 128:].abs().sum() > 0  # the score's columns move at once
    optimizer = torch.optim.SGD(scored.parameters(), lr=1.0)
    optimizer.step()
    optimizer.zero_grad()
    scored(x, t, {**cond, "score": score}).pow(2).mean().backward()
    assert scored.score_proj.weight.grad.abs().sum() > 0


def test_no_score_and_an_empty_score_row_differ_from_a_score():
    _, scored = models()
    with torch.no_grad():
        scored.dit.proj_in.weight[:, 128:].normal_()
    x, t, cond, score = inputs(scored)
    plain = scored(x, t, cond)
    assert torch.allclose(scored(x, t, {**cond, "score": torch.zeros_like(score)}), plain, atol=1e-6)
    assert not torch.allclose(scored(x, t, {**cond, "score": score}), plain, atol=1e-4)


def test_a_score_model_goes_on_from_its_own_weights():
    """--init-from a model that already reads a score keeps everything, its score projection included."""
    torch.manual_seed(2)
    config = DiTConfig(layers=2, max_seconds=8.0, score_dim=SCORE_DIM)
    first = LatentDiT(config)
    again = LatentDiT(config)
    widen_for_score(again, first.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
