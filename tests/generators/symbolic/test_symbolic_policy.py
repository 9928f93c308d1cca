"""The symbolic generator under a non-default DevicePolicy, on the CPU: what CUDA runs (bf16 weights, the
step compiled over a static cache) checked without a GPU."""

from __future__ import annotations

import torch

from cadenza.conditioning import Conditioning, Sampling
from cadenza.engine.decode import decode_step
from cadenza.engine.device import DevicePolicy
from cadenza.generators.symbolic.generator import SymbolicGenerator

FAST = dict(max_tokens=120)


def with_policy(studio, policy: DevicePolicy) -> SymbolicGenerator:
    loaded = SymbolicGenerator.from_checkpoint(studio.spec("tiny-remi"))
    return SymbolicGenerator(loaded.spec, loaded.model, loaded.tokenizer, policy)


def test_bf16_policy_casts_the_model_and_writes_valid_midi(studio):
    generator = with_policy(studio, DevicePolicy(prefer="cpu", dtype=torch.bfloat16))
    assert generator.model.embed.weight.dtype == torch.bfloat16
    out = generator.generate(Conditioning(bars=2, time_signature="3/4"), Sampling(seed=4, **FAST))[0]
    assert out.score.note_num() > 0 and out.provenance.notes["bars_written"] == 2


def test_compiled_policy_reuses_one_graph_across_calls(studio, eager_backend_compile):
    generator = with_policy(studio, DevicePolicy(prefer="cpu", compile=True))
    assert generator._step is not decode_step and generator._step.__wrapped__ is decode_step  # compiled
    cond = Conditioning(bars=2, key="D major")  # 3 candidates per output: batch 3
    first = generator.generate(cond, Sampling(seed=5, **FAST))[0]
    again = generator.generate(cond, Sampling(seed=5, **FAST))[0]  # same batch size: no recompile
    assert first.score.note_num() > 0
    assert first.score.dumps_midi() == again.score.dumps_midi()
