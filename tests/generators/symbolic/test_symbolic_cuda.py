"""The symbolic generator on a GPU (``device="cuda"``): bf16 weights, and the CUDA graph replayed.

Marked ``cuda``: skipped on CPU-only machines (CI), run on a lent GPU with ``pytest -m cuda``.
"""

from __future__ import annotations

import pytest

from cadenza.conditioning import Conditioning, Sampling
from cadenza.engine.device import pick_dtype
from cadenza.studio import Studio

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("one_thread")]


def test_symbolic_generator_on_cuda(tiny_root):
    studio = Studio(model_dirs=[tiny_root], device="cuda")
    generator = studio.load("tiny-remi")
    assert next(generator.model.parameters()).device.type == "cuda"
    assert next(generator.model.parameters()).dtype == pick_dtype("cuda")
    cond, sampling = Conditioning(bars=2, key="A minor"), Sampling(seed=3, max_tokens=120)
    first = studio.generate("tiny-remi", cond, sampling)[0]
    again = studio.generate("tiny-remi", cond, sampling)[0]  # the second call replays the graph
    assert first.score.note_num() > 0 and first.provenance.notes["bars_written"] == 2
    assert first.score.dumps_midi() == again.score.dumps_midi()
