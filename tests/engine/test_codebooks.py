"""Multi-codebook decoding with the delay pattern, on a tiny fake codec LM written here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cadenza.engine.decode import DecodeParams, decode_codebooks
from cadenza.engine.patterns import DelayPattern
from cadenza.errors import InvalidConditioning

K, CARD = 3, 16
SPECIAL = CARD  # start / delay-pad token: an extra embedding row the model never predicts


class FakeCodecLM(nn.Module):
    """``codes [B, K, T] -> logits [B, K, T, CARD]``: each position sees the running mean of the summed
    codebook embeddings up to itself (causal), so cached and uncached passes must agree."""

    def __init__(self, seed: int = 0, max_seq_len: int = 64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Parameter(torch.randn(K, CARD + 1, 8, generator=g))
        self.head = nn.Parameter(torch.randn(K, 8, CARD, generator=g) * 3)
        self.n_codebooks, self.vocab_size, self.max_seq_len = K, CARD, max_seq_len
        self.cache: torch.Tensor | None = None
        self.seen: list[torch.Tensor] = []  # every input, to check what the model was shown

    def setup_cache(self, batch_size, max_seq_len, dtype=None, device=None, *, static=None):
        self.cache = torch.zeros(batch_size, max_seq_len, 8, dtype=dtype or self.embed.dtype, device=device)

    def clear_cache(self):
        self.cache = None

    def forward(self, codes: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(codes.clone())
        assert codes.min() >= 0 and codes.max() <= SPECIAL, "the model was fed an unknown token"
        x = sum(self.embed[k][codes[:, k]] for k in range(K))  # [B, T, 8]
        if input_pos is None:
            h = x.cumsum(1) / torch.arange(1, x.shape[1] + 1)[None, :, None]
        else:
            self.cache[:, input_pos] = x
            upto = (torch.arange(self.cache.shape[1])[None, :] <= input_pos[:, None]).to(x.dtype)  # [T, S]
            h = (upto @ self.cache) / (input_pos[None, :, None] + 1).to(x.dtype)
        return torch.einsum("btd,kdv->bktv", torch.tanh(h), self.head)


def greedy_reference(model: FakeCodecLM, prompt: torch.Tensor, n_new: int, fixed: torch.Tensor | None = None) -> torch.Tensor:
    """No cache, whole delayed sequence recomputed at every step (``fixed``: given new codes, -1 elsewhere)."""
    b, k, t0 = prompt.shape
    pattern = DelayPattern(k)
    n_frames = t0 + n_new
    codes = torch.full((b, k, n_frames), -1)
    codes[..., :t0] = prompt
    if fixed is not None:
        codes[..., t0:] = fixed
    seq = torch.cat([torch.full((b, k, 1), SPECIAL), pattern.build(codes, SPECIAL)], dim=-1)
    with torch.no_grad():
        for pos in range(t0 + 1, seq.shape[-1]):
            nxt = model(seq[..., :pos])[..., -1, :].argmax(-1)
            seq[..., pos] = torch.where(seq[..., pos] == -1, nxt, seq[..., pos])
    return pattern.revert(seq[..., 1:])


@pytest.mark.parametrize("t0", [0, 1, 4])
def test_greedy_matches_recompute_and_keeps_the_prompt(t0):
    model = FakeCodecLM()
    prompt = torch.randint(0, CARD, (2, K, t0), generator=torch.Generator().manual_seed(t0))
    out = decode_codebooks(model, prompt, DecodeParams(max_new_tokens=6, temperature=0.0, pad_id=SPECIAL))
    assert out.shape == (2, K, t0 + 6)
    assert torch.equal(out[..., :t0], prompt)
    assert out.max() < CARD  # no pad/special token survives the revert
    assert torch.equal(out, greedy_reference(FakeCodecLM(), prompt, 6))
    # Delayed slots were shown as the special token, never as a sampled one.
    first = model.seen[0]
    assert (first[:, :, 0] == SPECIAL).all()
    assert model.cache is None


@pytest.mark.parametrize("t0", [0, 3])
def test_fixed_codes_are_kept_and_read_like_a_prompt(t0):
    """The first codebook of every new frame given (a sketch's coarse codes): kept as given, and what the
    model samples for the others is what it samples having read them (the recompute reference)."""
    prompt = torch.randint(0, CARD, (2, K, t0), generator=torch.Generator().manual_seed(3))
    fixed = torch.full((1, K, 6), -1)
    fixed[:, 0] = torch.randint(0, CARD, (6,), generator=torch.Generator().manual_seed(4))
    model = FakeCodecLM()
    out = decode_codebooks(model, prompt, DecodeParams(max_new_tokens=6, temperature=0.0, pad_id=SPECIAL),
                           fixed=fixed)
    assert torch.equal(out[:, 0, t0:], fixed[:, 0].expand(2, -1))
    assert torch.equal(out, greedy_reference(FakeCodecLM(), prompt, 6, fixed=fixed))
    assert not torch.equal(out, decode_codebooks(FakeCodecLM(), prompt, DecodeParams(max_new_tokens=6, temperature=0.0,
                                                                                     pad_id=SPECIAL)))
    # under CFG the unconditional rows read the given codes too
    model.seen.clear()
    params = DecodeParams(max_new_tokens=6, top_k=4, cfg_scale=2.0, pad_id=SPECIAL, rng=torch.Generator().manual_seed(0))
    guided = decode_codebooks(model, prompt, params, uncond_prompt=prompt, fixed=fixed)
    assert torch.equal(guided[:, 0, t0:], fixed[:, 0].expand(2, -1))
    last = model.seen[-1]
    assert last.shape[0] == 4 and torch.equal(last[:2], last[2:])
    with pytest.raises(ValueError, match="fixed codes"):
        decode_codebooks(model, prompt, DecodeParams(max_new_tokens=5, pad_id=SPECIAL), fixed=fixed)


def test_sampling_is_deterministic_and_cfg_batches():
    model = FakeCodecLM()
    prompt = torch.randint(0, CARD, (2, K, 3), generator=torch.Generator().manual_seed(1))

    def run(seed, **kw):
        params = DecodeParams(max_new_tokens=8, top_k=5, pad_id=SPECIAL, rng=torch.Generator().manual_seed(seed), **kw)
        return decode_codebooks(model, prompt, params, uncond_prompt=prompt if "cfg_scale" in kw else None)

    a, b, c = run(1), run(1), run(2)
    assert a.shape == (2, K, 11)
    assert torch.equal(a, b) and not torch.equal(a, c)
    model.seen.clear()
    guided = run(1, cfg_scale=3.0)
    assert guided.shape == (2, K, 11)
    assert {s.shape[0] for s in model.seen} == {4}
    assert torch.equal(guided[..., :3], prompt)


def test_progress_and_limits():
    model = FakeCodecLM(max_seq_len=12)
    steps = []
    prompt = torch.zeros(1, K, 2, dtype=torch.long)
    decode_codebooks(model, prompt, DecodeParams(max_new_tokens=5, temperature=0, pad_id=SPECIAL,
                                                 progress=lambda s, n: steps.append((s, n))))
    assert steps == [(i, 5 + K - 1) for i in range(1, 5 + K)]
    with pytest.raises(InvalidConditioning, match="holds 12"):
        decode_codebooks(model, prompt, DecodeParams(max_new_tokens=9, pad_id=SPECIAL))
    with pytest.raises(InvalidConditioning, match="fixed length"):
        decode_codebooks(model, prompt, DecodeParams(max_new_tokens=2, eos_id=3))
    with pytest.raises(ValueError, match="codebooks"):
        decode_codebooks(model, torch.zeros(1, K + 1, 2, dtype=torch.long), DecodeParams(max_new_tokens=2))
