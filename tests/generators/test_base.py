"""The per-call prologue and epilogue every generator shares (``generators/base.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.errors import UnsupportedConditioning
from cadenza.generators.base import (Callbacks, Progress, begin_call, cpu_threads, make_rng, provenance,
                                     resolve_seed)

SPEC = CheckpointSpec(name="demo", family="symbolic", directory=Path("."),
                      files={"weights": {"path": "w.safetensors", "sha256": "ab" * 32}}, config={},
                      capabilities=frozenset({Capability.KEY, Capability.BARS}), license="MIT")


def test_a_given_seed_is_kept_and_a_missing_one_is_drawn():
    assert resolve_seed(Sampling(seed=12)) == 12
    drawn = resolve_seed(Sampling())
    assert isinstance(drawn, int) and 0 <= drawn < 2**31


def test_rng_is_seeded_and_independent_of_the_global_generator():
    a = torch.rand(4, generator=make_rng(3))
    torch.manual_seed(99)
    assert torch.equal(a, torch.rand(4, generator=make_rng(3, "cpu")))


def test_begin_call_checks_the_conditioning_again():
    assert begin_call(SPEC, Conditioning(key="D major"), Sampling(seed=5)) == 5
    with pytest.raises(UnsupportedConditioning, match="tempo"):
        begin_call(SPEC, Conditioning(tempo_bpm=100), Sampling(seed=5))


def test_cpu_threads_caps_and_restores():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with cpu_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with cpu_threads(8):  # never more than the caller allows
            assert torch.get_num_threads() == 2
        with cpu_threads(1, torch.device("meta")):  # off the CPU: unchanged
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), cpu_threads(1):
            raise RuntimeError("restored on errors too")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_chosen_thread_count_overrides_the_models_own_choice():
    from cadenza.generators.base import chosen_threads, threads_for, weight_count

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with chosen_threads(3):
            assert torch.get_num_threads() == 3
            with cpu_threads(1):  # a small model's own choice does not lower what the user chose
                assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
        with chosen_threads(None), cpu_threads(1):
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    small, big = torch.nn.Linear(10, 10), torch.nn.Embedding(60_000, 1000)
    assert weight_count(small, small) == 110 and threads_for(weight_count(small)) == 1
    assert threads_for(weight_count(big)) is None  # a big model: all physical cores

    class Pipeline:  # a diffusers pipeline keeps its modules as components
        components = {"unet": big, "scheduler": object()}

    class Backend:
        def __init__(self):
            self.pipe = Pipeline()

    assert weight_count(Backend()) == 60_000_000


def test_progress_counts_across_windows():
    seen = []
    exact = Progress(Callbacks(progress=lambda d, t: seen.append((d, t))), 3)
    for _ in range(3):
        exact.step(0, 99)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    seen.clear()
    guess = Progress(Callbacks(progress=lambda d, t: seen.append((d, t))), 2, estimate=True)
    for _ in range(3):
        guess.step(0, 99)
    assert seen == [(1, 2), (2, 3), (3, 4)]  # a guess never reports the call finished
    Progress(Callbacks(), 1).step(0, 1)  # no callback: nothing to call


def test_provenance_records_the_request_and_the_model():
    conditioning, sampling = Conditioning(key="D major"), Sampling(seed=4, num_samples=2)
    made = provenance(SPEC, conditioning, sampling, seed=4, sample_index=1, timings_s={"generate": 0.5},
                      notes={"bars": 4})
    assert (made.model, made.family, made.checkpoint_sha256) == ("demo", "symbolic", "ab" * 32)
    assert made.conditioning == conditioning.to_dict() and made.sampling == sampling.to_dict()
    import torch

    assert (made.seed, made.sample_index, made.timings_s) == (4, 1, {"generate": 0.5})
    assert made.notes == {"bars": 4, "cpu_threads": torch.get_num_threads()}
