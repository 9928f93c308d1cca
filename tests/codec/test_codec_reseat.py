"""A model checkpoint gets a new decoder for its codec; anything else about the codec is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from cadenza.checkpoints import read_manifest, sha256_of, write_manifest
from cadenza.codec.model import CodecConfig, build_codec, codec_state_dict
from cadenza.codec.reseat import reseat_codec
from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError

TINY = CodecConfig(n_filters=4, dimension=8, n_q=2, bins=16, lstm=0, decoder="istft", decoder_dim=8, decoder_layers=1)


def exported(directory, config: CodecConfig, state: dict, command: str):
    directory.mkdir(parents=True)
    save_file(state, directory / "codec.safetensors")
    (directory / "codec.json").write_text(json.dumps({"config": config.to_dict(), "metrics": {"mel_distance": 0.5},
                                                      "made_by": {"command": command}}))
    return directory


def test_a_new_decoder_is_reseated_and_recorded(tmp_path):
    torch.manual_seed(0)
    codec = build_codec(TINY)
    old = codec_state_dict(codec)
    checkpoint = tmp_path / "model"
    checkpoint.mkdir()
    save_file(old, checkpoint / "codec.safetensors")
    save_file({"w": torch.zeros(2)}, checkpoint / "lm.safetensors")
    write_manifest(checkpoint, name="tiny", family="codec_lm", files={"lm": "lm.safetensors", "codec": "codec.safetensors"},
                   config={"format": "cadenza", "codec": TINY.to_dict()}, capabilities=[Capability.TEXT], license="test",
                   made_by={"command": "cadenza train codec-lm", "codec": {"command": "old"}},
                   metrics={"codec": {"mel_distance": 0.9}})
    better = {k: (v + 1.0 if k.startswith("decoder.") and v.is_floating_point() else v) for k, v in old.items()}
    source = exported(tmp_path / "better", TINY, better, "cadenza train codec --decoder istft")
    spec = reseat_codec(checkpoint, source)
    assert spec.files["codec"]["sha256"] == sha256_of(source / "codec.safetensors") == sha256_of(checkpoint / "codec.safetensors")
    assert spec.files["lm"]["sha256"] == read_manifest(checkpoint).files["lm"]["sha256"]
    assert spec.metrics["codec"] == {"mel_distance": 0.5} and spec.made_by["codec"] == {"command": "cadenza train codec --decoder istft"}
    assert spec.made_by["command"].startswith("cadenza train codec-lm && cadenza train codec --decoder istft && ")
    assert "cadenza train codec --reseat" in spec.made_by["command"]

    other = build_codec(TINY)  # another encoder: its codes mean something else
    with pytest.raises(CheckpointError, match="weights differ"):
        reseat_codec(checkpoint, exported(tmp_path / "other", TINY, codec_state_dict(other), "x"))
    wider = replace(TINY, n_q=3)
    with pytest.raises(CheckpointError, match="settings differ"):
        reseat_codec(checkpoint, exported(tmp_path / "wider", wider, better, "x"))
    assert sha256_of(checkpoint / "codec.safetensors") == sha256_of(source / "codec.safetensors")  # refusals wrote nothing


def test_joined_steps_keep_each_step_once_in_first_order():
    from cadenza.codec.reseat import join_steps

    assert join_steps("a && b && c", "a && d", "e") == "a && b && c && d && e"
    assert join_steps("", "a &&  b ", "b") == "a && b"
