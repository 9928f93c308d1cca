"""Device policy: device and dtype choice, thread count, and the compile fallback."""

from __future__ import annotations

import warnings

import pytest
import torch

from cadenza.engine import device as device_mod
from cadenza.engine.device import DevicePolicy, maybe_compile, physical_cores, pick_device, pick_dtype, set_threads


def test_cpu_choices():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_dtype("cpu") == torch.float32
    if not torch.cuda.is_available():
        assert pick_device(None).type in ("cpu", "mps")
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            pick_device("cuda")
    policy = DevicePolicy(prefer="cpu")
    assert policy.device().type == "cpu"
    assert policy.dtype_for("cpu") == torch.float32
    assert DevicePolicy(dtype=torch.bfloat16).dtype_for("cpu") == torch.bfloat16
    assert not policy.should_compile("cpu") and policy.should_compile("cuda")
    assert DevicePolicy(compile=True).should_compile("cpu")


def test_threads():
    before = torch.get_num_threads()
    try:
        assert physical_cores() >= 1
        assert set_threads(None) == physical_cores() == torch.get_num_threads()
        assert set_threads(0) == 1 == torch.get_num_threads()
        assert DevicePolicy(threads=1).apply_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_compile_disabled_returns_the_function():
    fn = lambda x: x + 1  # noqa: E731
    assert maybe_compile(fn, enabled=False) is fn
    assert DevicePolicy(prefer="cpu").maybe_compile(fn) is fn


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("inductor exploded")
        return run

    monkeypatch.setattr(device_mod.torch, "compile", broken_compile)
    calls = []

    def fn(x):
        calls.append(x)
        return x * 2

    wrapped = maybe_compile(fn, enabled=True)
    with pytest.warns(RuntimeWarning, match="inductor exploded"):
        assert wrapped(3) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: eager from now on
        assert wrapped(4) == 8
    assert calls == [3, 4]


def test_compile_unavailable_falls_back_at_wrap_time(monkeypatch):
    def no_compile(fn, **kwargs):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(device_mod.torch, "compile", no_compile)
    fn = lambda x: x  # noqa: E731
    with pytest.warns(RuntimeWarning, match="not supported"):
        assert maybe_compile(fn, enabled=True) is fn


@pytest.mark.cuda
def test_cuda_policy():
    assert pick_device(None).type == "cuda"
    assert pick_dtype("cuda") in (torch.bfloat16, torch.float16)
