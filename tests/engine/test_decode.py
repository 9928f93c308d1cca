"""The single-stream decode loop against full-recompute references on a tiny random model."""

from __future__ import annotations

import pytest
import torch

from cadenza.engine.decode import DecodeParams, cfg_combine, decode, decode_step
from cadenza.engine.sampling import EmptyMask
from cadenza.errors import Cancelled, InvalidConditioning

V = 64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def prompts(b: int = 2, t: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=gen(seed))


def greedy_reference(model, prompt: torch.Tensor, n: int, uncond: torch.Tensor | None = None,
                     cfg: float = 1.0, penalty: float = 1.0) -> torch.Tensor:
    """Recompute the whole sequence at every step, no cache: the slow obvious decoder."""
    seq, useq = prompt.clone(), None if uncond is None else uncond.clone()
    t0 = prompt.shape[1]
    with torch.no_grad():
        for _ in range(n):
            logits = model(seq)[:, -1]
            if useq is not None:
                logits = model(useq)[:, -1] + cfg * (logits - model(useq)[:, -1])
            if penalty != 1.0:
                for row in range(seq.shape[0]):
                    for tok in set(seq[row, t0:].tolist()):
                        v = logits[row, tok]
                        logits[row, tok] = v / penalty if v > 0 else v * penalty
            nxt = logits.argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
            if useq is not None:
                useq = torch.cat([useq, nxt], 1)
    return seq


def test_kv_cache_step_equals_full_recompute(tiny_model):
    seq = prompts(3, 12)
    t0 = 4
    with torch.inference_mode():
        full = tiny_model(seq)
        tiny_model.setup_cache(3, 12)
        pos = torch.arange(12)
        prefill = tiny_model(seq[:, :t0], pos[:t0])
        assert torch.allclose(prefill, full[:, :t0], atol=1e-4)
        for i in range(t0, 12):
            step = decode_step(tiny_model, seq[:, i : i + 1], pos[i : i + 1])
            assert torch.allclose(step, full[:, i], atol=1e-4), i
        tiny_model.clear_cache()


def test_greedy_equals_argmax_of_full_recompute(tiny_model):
    p = prompts()
    out = decode(tiny_model, p, DecodeParams(max_new_tokens=24, temperature=0.0))
    assert out.shape == (2, 5 + 24)
    assert torch.equal(out, greedy_reference(tiny_model, p, 24))
    assert tiny_model.layers[0].attn.kv_cache is None  # cache released after the call
    assert not out.is_inference()
    out[0, 0] = 1  # an ordinary tensor: callers may edit the result in place


def test_cfg_is_one_batched_forward_and_matches_the_formula(tiny_model):
    p, u = prompts(2, 5, seed=1), prompts(2, 5, seed=2)
    batches = []
    handle = tiny_model.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        out = decode(tiny_model, p, DecodeParams(max_new_tokens=12, temperature=0.0, cfg_scale=3.0), uncond_prompt=u)
    finally:
        handle.remove()
    assert set(batches) == {4} and len(batches) == 12  # prefill + 11 steps, each one [2B] forward
    assert torch.equal(out, greedy_reference(tiny_model, p, 12, uncond=u, cfg=3.0))
    # cfg_scale 1 means no guidance: the unconditional rows are not even run.
    plain = decode(tiny_model, p, DecodeParams(max_new_tokens=12, temperature=0.0, cfg_scale=1.0), uncond_prompt=u)
    assert torch.equal(plain, greedy_reference(tiny_model, p, 12))


def test_cfg_combine_formula():
    cond, uncond = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]])
    got = cfg_combine(torch.cat([cond, uncond]), 2.5)
    assert torch.allclose(got, uncond + 2.5 * (cond - uncond))
    assert torch.allclose(cfg_combine(torch.cat([cond, uncond]), 0.0), uncond)


def test_repetition_penalty_in_the_loop(tiny_model):
    p = prompts(2, 5, seed=3)
    out = decode(tiny_model, p, DecodeParams(max_new_tokens=16, temperature=0.0, repetition_penalty=1.8))
    assert torch.equal(out, greedy_reference(tiny_model, p, 16, penalty=1.8))


def test_eos_stops_each_row_and_pads(tiny_model):
    p = prompts(2, 5, seed=4)
    ref = decode(tiny_model, p, DecodeParams(max_new_tokens=20, temperature=0.0))
    eos = int(ref[0, 5 + 2])  # row 0 emits it by its third new token
    pad = V + 1  # outside the vocabulary, so padding is unmistakable
    out = decode(tiny_model, p, DecodeParams(max_new_tokens=20, temperature=0.0, eos_id=eos, pad_id=pad))
    for row in range(2):
        new = ref[row, 5:].tolist()
        stop = new.index(eos) + 1 if eos in new else len(new)
        got = out[row, 5:].tolist()
        assert got[:stop] == new[:stop]
        assert all(t == pad for t in got[stop:])
    assert (out[:, :5] == p).all()


def test_stops_early_when_every_row_is_done(tiny_model):
    p = prompts(1, 5, seed=4)
    ref = decode(tiny_model, p, DecodeParams(max_new_tokens=20, temperature=0.0))
    eos = int(ref[0, 5 + 3])
    first = ref[0, 5:].tolist().index(eos)
    out = decode(tiny_model, p, DecodeParams(max_new_tokens=20, temperature=0.0, eos_id=eos))
    assert out.shape == (1, 5 + first + 1)
    assert torch.equal(out, ref[:, : 5 + first + 1])


class ForceSequences:
    """A toy grammar: row i must emit ``sequences[i]`` exactly, then it is done."""

    def __init__(self, sequences: list[list[int]], vocab_size: int = V) -> None:
        self.sequences, self.vocab_size = sequences, vocab_size

    def start(self, batch_size: int, prompt: torch.Tensor) -> None:
        assert batch_size == len(self.sequences) and prompt.shape[0] == batch_size
        self.pos = [0] * batch_size
        self.started = True

    def mask(self, step: int) -> torch.Tensor:
        allowed = torch.zeros(len(self.sequences), self.vocab_size, dtype=torch.bool)
        for row, seq in enumerate(self.sequences):
            if self.pos[row] < len(seq):
                allowed[row, seq[self.pos[row]]] = True
        return allowed  # rows that are done get an empty row: the loop must ignore it

    def advance(self, ids: torch.Tensor) -> None:
        for row, tok in enumerate(ids.tolist()):
            if self.pos[row] < len(self.sequences[row]):
                assert tok == self.sequences[row][self.pos[row]]
                self.pos[row] += 1

    def done(self) -> torch.Tensor:
        return torch.tensor([p >= len(s) for p, s in zip(self.pos, self.sequences)])


def test_constraint_forces_tokens_and_ends_rows(tiny_model):
    p = prompts(2, 5)
    c = ForceSequences([[5, 9, 2, 7], [1, 1]])
    out = decode(tiny_model, p, DecodeParams(max_new_tokens=30, temperature=1.5, pad_id=0, rng=gen()), constraint=c)
    assert out[:, 5:].tolist() == [[5, 9, 2, 7], [1, 1, 0, 0]]


class AllowedSet:
    def __init__(self, allowed: list[int], dead_at: int | None = None) -> None:
        self.allowed, self.dead_at = allowed, dead_at

    def start(self, batch_size, prompt):
        self.b = batch_size

    def mask(self, step):
        m = torch.zeros(self.b, V, dtype=torch.bool)
        if step != self.dead_at:
            m[:, self.allowed] = True
        return m

    def advance(self, ids):
        pass

    def done(self):
        return torch.zeros(self.b, dtype=torch.bool)


def test_constraint_mask_restricts_sampling(tiny_model):
    out = decode(tiny_model, prompts(4, 5), DecodeParams(max_new_tokens=30, rng=gen(1)), constraint=AllowedSet([3, 8, 40]))
    assert set(out[:, 5:].flatten().tolist()) <= {3, 8, 40}


def test_empty_mask_is_a_clear_error(tiny_model):
    with pytest.raises(EmptyMask, match="no allowed token|masked out"):
        decode(tiny_model, prompts(), DecodeParams(max_new_tokens=10, rng=gen()), constraint=AllowedSet([3], dead_at=2))
    assert tiny_model.layers[0].attn.kv_cache is None


def test_cancel_raises_and_progress_is_reported(tiny_model):
    calls: list[tuple[int, int]] = []
    decode(tiny_model, prompts(), DecodeParams(max_new_tokens=6, rng=gen(), progress=lambda s, n: calls.append((s, n))))
    assert calls == [(i, 6) for i in range(1, 7)]

    polls = iter(range(100))
    params = DecodeParams(max_new_tokens=50, rng=gen(), should_cancel=lambda: next(polls) >= 3)
    with pytest.raises(Cancelled, match="after 3 of 50"):
        decode(tiny_model, prompts(), params)
    assert tiny_model.layers[0].attn.kv_cache is None


def test_same_seed_same_output_different_seed_different(tiny_model):
    p = prompts(2, 5)

    def run(seed: int) -> torch.Tensor:
        return decode(tiny_model, p, DecodeParams(max_new_tokens=24, temperature=1.0, top_k=20, top_p=0.95, rng=gen(seed)))

    assert torch.equal(run(11), run(11))
    assert not torch.equal(run(11), run(12))


def test_batch_rows_are_independent_of_batch_size_for_greedy(tiny_model):
    p = prompts(3, 5, seed=9)
    both = decode(tiny_model, p, DecodeParams(max_new_tokens=10, temperature=0.0))
    one = decode(tiny_model, p[1:2], DecodeParams(max_new_tokens=10, temperature=0.0))
    assert torch.equal(both[1:2], one)


def test_invalid_params_and_inputs(tiny_model):
    for bad in (dict(max_new_tokens=0), dict(max_new_tokens=5, temperature=-1.0), dict(max_new_tokens=5, top_p=0.0),
                dict(max_new_tokens=5, repetition_penalty=0.0), dict(max_new_tokens=5, cfg_scale=-1.0)):
        with pytest.raises(InvalidConditioning):
            DecodeParams(**bad)
    with pytest.raises(InvalidConditioning, match="holds 128"):
        decode(tiny_model, prompts(1, 100), DecodeParams(max_new_tokens=29))
    with pytest.raises(ValueError, match="must match"):
        decode(tiny_model, prompts(2, 5), DecodeParams(max_new_tokens=3, cfg_scale=2.0), uncond_prompt=prompts(2, 4))
    with pytest.raises(ValueError, match="T0 >= 1"):
        decode(tiny_model, torch.zeros(2, 0, dtype=torch.long), DecodeParams(max_new_tokens=3))
    with pytest.raises(ValueError, match="cache_len"):
        decode(tiny_model, prompts(2, 5), DecodeParams(max_new_tokens=3), cache_len=6)


def test_fixed_cache_len_gives_the_same_tokens(tiny_model):
    p = prompts(2, 5)
    params = DecodeParams(max_new_tokens=10, rng=gen(3))
    a = decode(tiny_model, p, params)
    b = decode(tiny_model, p, DecodeParams(max_new_tokens=10, rng=gen(3)), cache_len=tiny_model.max_seq_len)
    assert torch.equal(a, b)


@pytest.mark.cuda
def test_cuda_compiled_step_matches_eager(make_tiny_model):
    from cadenza.engine.device import DevicePolicy

    model = make_tiny_model().cuda()
    policy = DevicePolicy(prefer="cuda")
    p = prompts(2, 5).cuda()
    step = policy.maybe_compile(decode_step, "cuda")

    def run(step_fn, seed: int) -> torch.Tensor:
        params = DecodeParams(max_new_tokens=16, rng=torch.Generator("cuda").manual_seed(seed))
        return decode(model, p, params, step_fn=step_fn, cache_len=64)

    eager = run(decode_step, 5)
    assert torch.equal(eager, run(decode_step, 5))
    assert torch.equal(run(step, 5), eager)
    assert torch.equal(run(step, 5), eager)  # second call reuses the compiled graph and cache shape
    greedy = decode(model, p, DecodeParams(max_new_tokens=16, temperature=0.0))
    assert torch.equal(greedy.cpu(), greedy_reference(make_tiny_model(), p.cpu(), 16))
