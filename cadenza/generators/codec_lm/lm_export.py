"""Export of a trained codec LM run into a checkpoint folder the codec LM generator loads
(``config.format = "cadenza"``: ``lm.safetensors`` + ``codec.safetensors``, MiniLM text conditioning)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from cadenza.checkpoints import CheckpointSpec, write_manifest
from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig
from cadenza.generators.codec_lm.lm_data import load_split
from cadenza.generators.codec_lm.lm_train import validation_loss
from cadenza.training import load_state, read_run_config

LICENSE = ("Apache-2.0 (weights); trained on public-domain music21 corpus works rendered with the FluidR3_GM "
           "SoundFont (MIT)")


def export_lm(run_dir: str | os.PathLike, cache_dir: str | os.PathLike, codec_dir: str | os.PathLike,
              out_dir: str | os.PathLike, name: str, command: str = "") -> CheckpointSpec:
    """Write ``out_dir`` (weights in float16, the codec copied beside them) and its manifest."""
    from safetensors.torch import save_file

    from cadenza.fileio import atomic_path
    from cadenza.codec.export import CODEC_WEIGHTS, read_codec_dir

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    saved = read_run_config(run_dir)
    lm_config = CodecLMConfig.from_dict(saved["lm"])
    model = CodecLM(lm_config)
    state = load_state(run_dir / "state.pt", model, None)
    if state is None:
        raise CheckpointError(f"{run_dir}: no state.pt to export (train first)")
    frames = saved["train"]["crop_frames"]
    meta = json.loads((Path(cache_dir) / "meta.json").read_text())
    rate = float(meta["frame_rate"]) if lm_config.score_dim is not None else None
    val, test = load_split(cache_dir, "validation"), load_split(cache_dir, "test")
    metrics = {"steps": int(state["step"]),
               "val_loss": validation_loss(model, val, frames, frame_rate=rate),
               "test_loss": validation_loss(model, test, frames, frame_rate=rate)}
    if rate is not None:
        metrics["test_loss_text_only"] = validation_loss(model, test, frames, frame_rate=rate, with_score=False)
    codec_config, codec_weights, codec_info = read_codec_dir(codec_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "lm.safetensors") as tmp:
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}, str(tmp))
    with atomic_path(out_dir / CODEC_WEIGHTS) as tmp:
        shutil.copyfile(codec_weights, tmp)
    config = {"format": "cadenza", "lm": lm_config.to_dict(), "codec": codec_config.to_dict(), "text_encoder": "minilm",
              "sample_rate": codec_config.sample_rate, "frame_rate": codec_config.frame_rate,
              "train_crop_s": frames / codec_config.frame_rate, "weights_dtype": "float16"}
    return write_manifest(
        out_dir, name=name, family="codec_lm", files={"lm": "lm.safetensors", "codec": CODEC_WEIGHTS}, config=config,
        capabilities=[Capability.TEXT, Capability.DURATION, Capability.PROMPT_AUDIO]
        + ([Capability.MELODY_MIDI] if lm_config.score_dim is not None else []), license=LICENSE,
        description=(f"A small text-to-music codec LM trained here ({model.num_parameters() / 1e6:.1f} M parameters, "
                     f"{codec_config.sample_rate // 1000} kHz mono): solo instruments and small ensembles playing "
                     "folk tunes, chorales and classical excerpts."),
        made_by={"recipe": "cadenza train codec-lm", "command": command, "data": meta.get("data", ""),
                 "train": saved["train"], "codec": codec_info.get("made_by", {})},
        metrics={**metrics, "codec": codec_info.get("metrics", {})})
