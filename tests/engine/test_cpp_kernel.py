"""The C++ step builder: names that change with what is compiled, nothing loaded that was not built."""

from __future__ import annotations

import pytest

from cadenza.engine.cpp_kernel import COMMON_SOURCE, CppKernel


def test_the_name_follows_the_source_and_the_shared_part(tmp_path, monkeypatch):
    source = tmp_path / "step.cpp"
    source.write_text("// one\n")
    kernel = CppKernel(source, "cadenza_test_step", "a test step")
    first = kernel.name()
    assert first.startswith("cadenza_test_step_") and kernel.name() == first
    assert kernel.sources() == [COMMON_SOURCE.read_text(), "// one\n"]  # the shared helpers come first
    source.write_text("// two\n")
    assert kernel.name() != first
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert kernel.build_dir() == tmp_path / "cache" / "cadenza-kernels" / kernel.name()


def test_an_unbuilt_or_disabled_kernel_loads_as_none(tmp_path, monkeypatch):
    source = tmp_path / "step.cpp"
    source.write_text("// never built\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kernel = CppKernel(source, "cadenza_test_step", "a test step")
    assert kernel.load() is None
    fake = kernel.build_dir() / f"{kernel.name()}.so"
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not a shared object")
    assert kernel.load() is None  # looked up once: forget() looks again
    kernel.forget()
    with pytest.warns(RuntimeWarning, match="did not load"):
        assert kernel.load() is None  # a broken build warns and the Python step runs
    monkeypatch.setenv("CADENZA_CPU_KERNEL", "0")
    kernel.forget()
    assert kernel.load() is None
