"""The benchmark runner's device options and the bandwidth-limit arithmetic (no timed assertions)."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from benchmarks import __main__ as runner
from benchmarks.hardware import bandwidth_fields, device_name, read_bandwidth_gbs


@pytest.fixture
def stub_benchmarks(monkeypatch):
    """Two fake benchmark modules: one taking the device options, one with only ``main(quick)``."""
    calls = []

    def with_options(quick, device="cpu", dtype=None, compile=None):
        calls.append({"quick": quick, "device": device, "dtype": dtype, "compile": compile})
        return {"ratio": 1.0}

    def plain(quick):
        calls.append({"quick": quick})
        return {"ratio": 2.0}

    for name, main in (("stub_options", with_options), ("stub_plain", plain)):
        module = types.ModuleType(f"benchmarks.{name}")
        module.main = main
        monkeypatch.setitem(sys.modules, f"benchmarks.{name}", module)
        monkeypatch.setitem(runner.BENCHMARKS, name, "a stub")
    return calls


def test_device_options_reach_benchmarks_that_take_them(stub_benchmarks, capsys):
    assert runner.main(["stub_options", "--quick", "--dtype", "bfloat16", "--compile"]) == 0
    assert stub_benchmarks[-1] == {"quick": True, "device": "cpu", "dtype": "bfloat16", "compile": True}
    assert runner.main(["stub_options", "--no-compile"]) == 0
    assert stub_benchmarks[-1]["compile"] is False and stub_benchmarks[-1]["dtype"] is None
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == {"benchmark": "stub_options", "quick": False, "ratio": 1.0}


def test_plain_benchmarks_run_as_before_and_refuse_device_options(stub_benchmarks, capsys):
    assert runner.main(["stub_plain", "--quick"]) == 0
    assert stub_benchmarks[-1] == {"quick": True}
    with pytest.raises(SystemExit):
        runner.main(["stub_plain", "--device", "cpu"])
    assert "stub_plain does not take --device" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    assert runner.main(["decode_symbolic", "--quick", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_bandwidth_fields_and_measurement():
    fields = bandwidth_fields(bytes_per_step=20e6, ours_ms_per_step=2.0, bandwidth_gbs=20.0)
    assert fields["limit_ms_per_step"] == pytest.approx(1.0)
    assert fields["fraction_of_limit"] == pytest.approx(0.5)
    assert fields["bytes_per_step_mb"] == 20.0
    assert read_bandwidth_gbs(torch.device("cpu"), 4e6, repeats=3) > 0
    assert device_name(torch.device("cpu"))


def test_bytes_per_step_counts_weights_and_caches():
    from benchmarks.decode_codec import bytes_per_step
    from benchmarks.decode_symbolic import bytes_per_token
    from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig
    from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig

    sym = SymbolicTransformer(TransformerConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, ffn_dim=32))
    weights = sum(p.numel() for p in sym.parameters()) * 4
    assert bytes_per_token(sym, 0) == weights
    assert bytes_per_token(sym, 10) == weights + 2 * 2 * 10 * 16 * 4
    assert bytes_per_token(sym.to(torch.bfloat16), 0) == weights / 2

    lm = CodecLM(CodecLMConfig(n_q=2, card=8, dim=16, num_heads=2, num_layers=1, ffn_dim=32, cond_dim=4))
    no_emb = sum(p.numel() for n, p in lm.named_parameters() if not n.startswith("emb.")) * 4
    assert bytes_per_step(lm, 0, rows=2) == no_emb + 2 * 1 * 2 * 64 * 16 * 4  # weights + cross K/V of 64 states
