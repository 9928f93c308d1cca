"""The torchaudio / xformers stand-ins: numerically right where libraries depend on them."""

import math
import sys

import numpy as np
import pytest
import torch

from cadenza.compat import torchaudio_shim, xformers_shim


def _sine(freq: float, sr: int = 16000, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    return torch.sin(2 * math.pi * freq * t)


def test_spectrogram_peak_and_window_normalisation():
    sr, n_fft = 16000, 512
    spec = torchaudio_shim.Spectrogram(n_fft=n_fft, hop_length=128, power=2, normalized=True)(_sine(1000.0)[None])
    assert spec.shape == (1, n_fft // 2 + 1, 16000 // 128 + 1)
    peak_bin = spec[0, :, 10:-10].mean(-1).argmax().item()
    assert abs(peak_bin * sr / n_fft - 1000.0) < sr / n_fft
    # Parseval-like check: with window normalisation a unit sine's energy per frame is about n_fft / 4 * ...
    raw = torchaudio_shim.Spectrogram(n_fft=n_fft, hop_length=128, power=2, normalized=False)(_sine(1000.0)[None])
    window_energy = torch.hann_window(n_fft).pow(2).sum()
    assert torch.allclose(spec, raw / window_energy, rtol=1e-4, atol=1e-6)


def test_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    wav = _sine(440.0) + 0.3 * _sine(1760.0)
    ours = torchaudio_shim.MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)(wav)
    ref = librosa.feature.melspectrogram(y=wav.numpy(), sr=16000, n_fft=1024, hop_length=256, n_mels=64, htk=True,
                                         norm=None, center=True, pad_mode="reflect", power=2.0)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-3, atol=1e-3 * ref.max())


def test_resample_keeps_a_tone():
    wav = _sine(440.0, sr=44100)
    out = torchaudio_shim.Resample(44100, 16000)(wav[None])
    assert abs(out.shape[-1] - 16000) <= 1
    expected = _sine(440.0, sr=16000)[: out.shape[-1]]
    assert torch.mean((out[0, 200:-200] - expected[200:-200]) ** 2) < 1e-4


def test_loudness_is_bs1770():
    pyloudnorm = pytest.importorskip("pyloudnorm")
    wav = 0.25 * _sine(997.0, sr=48000, seconds=2.0)
    ours = torchaudio_shim.Loudness(48000)(wav[None]).item()
    ref = pyloudnorm.Meter(48000).integrated_loudness(wav.numpy().astype(np.float64))
    assert abs(ours - ref) < 1e-6


def test_load_save_round_trip(tmp_path):
    wav = torch.stack([_sine(220.0), _sine(330.0)]) * 0.5
    path = tmp_path / "x.wav"
    torchaudio_shim.save(str(path), wav, 16000)
    back, sr = torchaudio_shim.load(str(path))
    assert sr == 16000 and back.shape == wav.shape
    assert torch.max(torch.abs(back - wav)) < 1e-3
    assert torchaudio_shim.info(str(path)).num_channels == 2


def test_xformers_standin_refuses_memory_efficient_kernels():
    modules = xformers_shim.build_modules()
    ops = modules["xformers.ops"]
    a, b = ops.unbind(torch.zeros(2, 3), dim=0)
    assert a.shape == (3,)
    with pytest.raises(NotImplementedError, match="torch attention backend"):
        ops.memory_efficient_attention(None, None, None)


def test_shims_never_replace_a_real_module(monkeypatch):
    from cadenza.compat import shims_installed

    import importlib.machinery
    import types

    sentinel = types.ModuleType("torchaudio")
    sentinel.__spec__ = importlib.machinery.ModuleSpec("torchaudio", loader=None)
    monkeypatch.setitem(sys.modules, "torchaudio", sentinel)
    monkeypatch.setitem(sys.modules, "xformers", sentinel)
    with shims_installed() as names:
        assert names == []
    assert sys.modules["torchaudio"] is sentinel


def test_shims_leave_sys_modules_clean():
    import importlib.util

    from cadenza.compat import shims_installed

    if importlib.util.find_spec("torchaudio") is not None:
        pytest.skip("a real torchaudio is installed")
    with shims_installed() as names:
        assert "torchaudio" in names and "torchaudio.transforms" in sys.modules
    assert "torchaudio" not in sys.modules and "torchaudio.transforms" not in sys.modules


def test_audiocraft_imports_with_the_shims():
    import importlib.util

    if importlib.util.find_spec("audiocraft") is None:
        pytest.skip("audiocraft is not installed (bash scripts/setup.sh installs it)")
    from cadenza.compat import import_audiocraft

    audiocraft = import_audiocraft()
    from audiocraft.modules.chroma import ChromaExtractor

    chroma = ChromaExtractor(sample_rate=16000, n_chroma=12, radix2_exp=11)
    out = chroma(_sine(440.0, seconds=2.0)[None, None])  # A4
    assert out.shape[-1] == 12
    assert out.mean(1)[0].argmax().item() == 9  # pitch class A (C=0)
    assert audiocraft.__version__


def test_parts_of_a_package_import_without_its_init_and_stay_the_same_objects():
    """A submodule imported with its package's __init__ skipped is the very module a later full import of
    the package uses (classes are identical), and the stand-in package does not stay behind."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cadenza.compat import import_audiocraft_parts\n"
        "seanet, quantization = import_audiocraft_parts('audiocraft.modules.seanet', 'audiocraft.quantization')\n"
        "assert 'audiocraft.data' not in sys.modules and 'audiocraft.models' not in sys.modules\n"
        "assert 'audiocraft' not in sys.modules  # the stand-in is gone\n"
        "from cadenza.compat import import_audiocraft\n"
        "import_audiocraft()\n"
        "import audiocraft.modules\n"
        "assert audiocraft.modules.SEANetEncoder is seanet.SEANetEncoder\n"
        "assert sys.modules['audiocraft.quantization'] is quantization and 'audiocraft.data' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_module_hidden_during_an_import_is_importable_again_afterwards():
    import sys

    from cadenza.compat import without_module

    name = "json.tool"  # any module not imported yet in this process
    sys.modules.pop(name, None)
    with without_module(name):
        with pytest.raises(ImportError):
            __import__(name)
    assert __import__(name) and name in sys.modules
    with without_module(name):  # already imported: left alone
        assert __import__(name)
