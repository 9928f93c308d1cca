"""The decode benchmarks' device modes on the CPU: the runner's --device/--dtype/--compile plumbing, bf16
and the compiled (static cache, CUDA-graph) step run through the benchmarks' own code on tiny models, the
bandwidth-limit arithmetic, and the clear error for a missing GPU. No timing assertions."""

from __future__ import annotations

import json
import math
import os
import sys
import types

import pytest
import torch

from benchmarks import __main__ as runner
from benchmarks.hardware import (DTYPES, bandwidth_fields, check_close, compile_fallbacks, device_name,
                                 parse_dtype, read_bandwidth_gbs)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the HF twin is built in code; nothing may download

CPU = torch.device("cpu")
# the keys both decode benchmarks add for a device run; the bandwidth ones must be finite and positive
DEVICE_KEYS = ("device", "device_name", "dtype", "compiled")
POSITIVE_KEYS = ("bandwidth_gbs", "bytes_per_step_mb", "limit_ms_per_step", "ours_ms_per_step",
                 "fraction_of_limit")


def assert_positive(figures: dict, keys) -> None:
    for key in keys:
        value = figures[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


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
    with pytest.raises(SystemExit):  # an unknown dtype is argparse's error, before anything runs
        runner.main(["stub_options", "--dtype", "float8"])
    assert "invalid choice: 'float8'" in capsys.readouterr().err


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


def test_dtype_names_and_logit_tolerances():
    assert parse_dtype(None, CPU) == torch.float32 and parse_dtype("bfloat16", CPU) == torch.bfloat16
    assert set(DTYPES) == {"float32", "bfloat16", "float16"}
    with pytest.raises(ValueError, match="float8"):
        parse_dtype("float8", CPU)
    ref = torch.tensor([[4.0, -2.0]])
    assert check_close("x", ref + 1e-5, ref, 1e-4) == pytest.approx(1e-5, rel=0.1)
    with pytest.raises(RuntimeError, match="x: max logit difference"):
        check_close("x", ref + 1e-3, ref, 1e-4)
    assert check_close("x", (ref + 0.1).bfloat16(), ref.bfloat16(), 1e-4) <= 0.2  # 5% of 4 in bf16
    with pytest.raises(RuntimeError):
        check_close("x", (ref + 1.0).bfloat16(), ref.bfloat16(), 1e-4)
    with pytest.raises(RuntimeError):
        check_close("x", torch.full_like(ref, float("nan")), ref, 1e-4)


def test_compile_fallbacks_are_collected_and_other_warnings_passed_on():
    import warnings

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with compile_fallbacks() as fallbacks:
            warnings.warn("torch.compile failed, running eager from now on: boom", RuntimeWarning)
            warnings.warn("unrelated", UserWarning)
    assert fallbacks == ["torch.compile failed, running eager from now on: boom"]
    assert [str(w.message) for w in shown] == [fallbacks[0], "unrelated"]  # still shown, in order


def tiny_symbolic():
    from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig

    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, ffn_dim=64, max_seq_len=64)
    return SymbolicTransformer(config).eval()


def test_decode_symbolic_in_bf16_reports_the_device_figures():
    from benchmarks import decode_symbolic

    figures = decode_symbolic.run(tiny_symbolic(), target=CPU, dtype=torch.bfloat16, compile=False, threads=1,
                                  n_new=6, repeats=1, batches=(1,))
    assert {k: figures[k] for k in DEVICE_KEYS} == {"device": "cpu", "device_name": device_name(CPU),
                                                    "dtype": "bfloat16", "compiled": False}
    assert figures["parity_max_abs_logit_diff"] <= 1e-4  # fp32 on the CPU, before the move
    assert math.isfinite(figures["device_parity_max_abs_logit_diff"])  # bf16, after it
    assert_positive(figures, POSITIVE_KEYS + ("ours_tok_s_b1", "hf_tok_s_b1", "ratio"))
    assert "ours_eager_tok_s_b1" not in figures and "compile_fallbacks" not in figures


def test_decode_symbolic_compiled_step_is_one_graph_and_eager_is_timed_too(eager_backend_compile):
    from benchmarks import decode_symbolic

    figures = decode_symbolic.run(tiny_symbolic(), target=CPU, dtype=torch.float32, compile=True, threads=1,
                                  n_new=6, repeats=1, batches=(1,))
    assert figures["compiled"] is True and figures["compile_fallbacks"] == []
    assert figures["step"] == "general (static cache)"
    assert_positive(figures, POSITIVE_KEYS + ("ours_tok_s_b1", "ours_eager_tok_s_b1", "ratio_eager_b1"))
    # the fixture checks that warm-up and timed runs shared one graph (no recompile)


@pytest.fixture(scope="module")
def tiny_codec_pair():
    """audiocraft's LM (None without audiocraft) and ours on its tensors: 1 layer, d 64, 4 x 256 codes."""
    from benchmarks import decode_codec

    return decode_codec.build(1, reference=decode_codec.reference_available() is None, dim=64, num_heads=4,
                              card=256)


def test_decode_codec_compiled_step_gives_the_eager_codes(tiny_codec_pair, eager_backend_compile):
    from benchmarks import decode_codec
    from cadenza.engine.decode import decode_step
    from cadenza.engine.device import DevicePolicy

    _, ours, states = tiny_codec_pair
    step = DevicePolicy(compile=True).maybe_compile(decode_step, CPU)
    with torch.inference_mode():
        compiled = [decode_codec.run_ours(ours, states, 5, seed, step, cache_len=9, static=True) for seed in (1, 2)]
        eager = [decode_codec.run_ours(ours, states, 5, seed, None, cache_len=9, static=True) for seed in (1, 2)]
    assert compiled[0].shape == (1, 4, 5)
    assert all(torch.equal(c, e) for c, e in zip(compiled, eager))  # sampled with the same seeded generator


def test_decode_codec_in_bf16_compiled_reports_the_device_figures(eager_backend_compile):
    from benchmarks import decode_codec

    figures = decode_codec.run(layers=1, frames=4, repeats=1, target=CPU, dtype=torch.bfloat16, compile=True,
                               threads=1, dim=64, num_heads=4, card=256)
    assert {k: figures[k] for k in DEVICE_KEYS} == {"device": "cpu", "device_name": device_name(CPU),
                                                    "dtype": "bfloat16", "compiled": True}
    assert figures["compile_fallbacks"] == [] and figures["steps"] == 7
    assert_positive(figures, POSITIVE_KEYS + ("x_realtime", "ours_eager_ms_per_step"))
    assert figures["target_ms_per_step"] == 2.0 and isinstance(figures["meets_target"], bool)
    assert math.isfinite(figures["device_vs_fp32_logit_max_diff"])
    if figures["reference_missing"] is None:  # audiocraft ran too, on the same bf16 weights
        assert figures["logit_max_diff"] <= 1e-3 and math.isfinite(figures["device_logit_max_diff"])
        assert figures["audiocraft_precision"] == "bfloat16 weights, no autocast"
        assert_positive(figures, ("audiocraft_ms_per_step", "ratio"))
    else:
        assert figures["ratio"] is None and figures["audiocraft_precision"] is None


def test_bandwidth_fields_never_round_a_slow_step_to_zero():
    """On a busy machine a step can be 10,000x over its limit: the fraction must stay positive."""
    fields = bandwidth_fields(bytes_per_step=20e6, ours_ms_per_step=50_000.0, bandwidth_gbs=20.0)
    assert 0 < fields["fraction_of_limit"] == pytest.approx(2e-5)


def test_seed_and_prompts_reach_only_a_benchmark_that_draws_its_inputs(stub_benchmarks, monkeypatch, capsys):
    drawn = []

    def seeded(quick, seed=7, prompts=None):
        drawn.append((seed, prompts))
        return {}

    module = types.ModuleType("benchmarks.stub_seeded")
    module.main = seeded
    monkeypatch.setitem(sys.modules, "benchmarks.stub_seeded", module)
    monkeypatch.setitem(runner.BENCHMARKS, "stub_seeded", "a stub")
    assert runner.main(["stub_seeded", "--seed", "11", "--prompts", "80"]) == 0
    assert runner.main(["stub_seeded"]) == 0
    assert drawn == [(11, 80), (7, None)]
    with pytest.raises(SystemExit):
        runner.main(["stub_seeded", "--prompts", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(["stub_plain", "--prompts", "5"])
    assert "stub_plain does not take --prompts" in capsys.readouterr().err


def test_more_audio_prompts_extend_the_same_list():
    from benchmarks.audio_controls import make_prompts

    instruments = ("violin", "flute", "cello")
    twenty, eighty = make_prompts(20, instruments, 11), make_prompts(80, instruments, 11)
    assert len(eighty) == 80 and eighty[:20] == twenty
    assert make_prompts(20, instruments, 7) != twenty
