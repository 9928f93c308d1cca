"""Our own codec LM format (lm.safetensors + codec.safetensors + MiniLM text) loads and generates."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from cadenza import Conditioning, Sampling
from cadenza.checkpoints import write_manifest
from cadenza.codec.model import CodecConfig, build_codec, codec_state_dict
from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError
from cadenza.generators.codec_lm.conditioners import ConditionInputs
from cadenza.generators.codec_lm.generator import CodecLMGenerator
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig, init_weights


def write_cadenza_checkpoint(directory, window_s: float = 1.0):
    directory.mkdir(parents=True, exist_ok=True)
    codec_config = CodecConfig(sample_rate=8000, n_filters=4, ratios=(5, 4, 4, 2), dimension=16, lstm=0, n_q=4, bins=32)
    torch.manual_seed(0)
    codec = build_codec(codec_config)
    lm_config = CodecLMConfig(n_q=4, card=32, dim=32, num_heads=4, num_layers=2, ffn_dim=64, cond_dim=384, max_seq_len=128)
    lm = CodecLM(lm_config)
    init_weights(lm, std=0.2)
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, directory / "lm.safetensors")
    save_file(codec_state_dict(codec), directory / "codec.safetensors")
    return write_manifest(directory, name="tiny-codec-lm", family="codec_lm",
                          files={"lm": "lm.safetensors", "codec": "codec.safetensors"},
                          config={"format": "cadenza", "lm": lm_config.to_dict(), "codec": codec_config.to_dict(),
                                  "text_encoder": "minilm", "window_s": window_s},
                          capabilities=[Capability.TEXT, Capability.DURATION, Capability.PROMPT_AUDIO], license="test")


def test_cadenza_format_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = write_cadenza_checkpoint(tmp_path / "tiny")
    gen = CodecLMGenerator.from_checkpoint(spec)
    assert gen.bundle.has_text and gen.bundle.window_s == 1.0
    outs = gen.generate(Conditioning(text="a slow waltz", duration_s=1.5), Sampling(seed=2, num_samples=2))
    assert [o.samples.shape for o in outs] == [(1, 12000), (1, 12000)]
    assert len(outs[0].provenance.notes["windows"]) == 2
    # the unconditional text is the all-False mask: the same as zero states
    _, mask, _ = gen.bundle.condition(ConditionInputs(["x", None], [None, None]))
    assert bool(mask[0].any()) and not bool(mask[1].any())


def test_cadenza_format_needs_its_config(tmp_path):
    spec = write_cadenza_checkpoint(tmp_path / "bad")
    broken = type(spec)(**{**spec.__dict__, "config": {"format": "cadenza"}})
    with pytest.raises(CheckpointError, match="'lm' and 'codec'"):
        CodecLMGenerator.from_checkpoint(broken)
    unknown = type(spec)(**{**spec.__dict__, "config": {"format": "onnx"}})
    with pytest.raises(CheckpointError, match="format 'onnx' is unknown"):
        CodecLMGenerator.from_checkpoint(unknown)
