"""A training run -> a self-contained checkpoint folder (EMA weights, the codec, manifest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from cadenza.checkpoints import CheckpointSpec, write_manifest
from cadenza.conditioning import Capability
from cadenza.fileio import atomic_path
from cadenza.generators.diffusion.cadenza_backend import DEFAULTS
from cadenza.generators.diffusion.model import DiTConfig, LatentDiT

CAPABILITIES = (Capability.TEXT, Capability.NEGATIVE_TEXT, Capability.DURATION, Capability.PROMPT_AUDIO)


def export_checkpoint(run_dir: str | Path, codec_dir: str | Path, data_dir: str | Path, out_dir: str | Path, name: str,
                      command: str = "", metrics: dict | None = None) -> CheckpointSpec:
    """Write ``out_dir`` from ``run_dir/state.pt`` (EMA weights, loaded with weights_only)."""
    from safetensors.torch import save_file

    from cadenza.codec.export import read_codec_dir

    run, out = Path(run_dir), Path(out_dir)
    saved = json.loads((run / "config.json").read_text())
    state = torch.load(run / "state.pt", weights_only=True)
    model = LatentDiT(DiTConfig(**saved["model"]))
    model.load_state_dict(state["ema"])
    codec_config, codec_weights, codec_info = read_codec_dir(codec_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
                  metadata={"step": str(state["step"])})
    with atomic_path(out / "codec.safetensors") as tmp:
        shutil.copyfile(codec_weights, tmp)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    train_losses = [r["loss"] for r in log if "loss" in r]
    val = [r for r in log if "val_loss" in r]
    build = Path(data_dir) / "BUILD.json"
    data_info = json.loads(build.read_text()) if build.is_file() else {}
    all_metrics = {"steps": int(state["step"]), "final_train_loss": train_losses[-1] if train_losses else None,
                   "train_loss_curve": train_losses[:: max(1, len(train_losses) // 40)],
                   "final_val_loss": val[-1]["val_loss"] if val else None,
                   "val_loss_curve": [(r["step"], r["val_loss"]) for r in val], **(metrics or {})}
    return write_manifest(
        out, name=name, family="diffusion", files={"weights": "model.safetensors", "codec": "codec.safetensors"},
        config={"format": "cadenza", "model": saved["model"], "codec": codec_config.to_dict(), "latent": saved["latent"],
                "defaults": DEFAULTS.to_dict(), "sample_rate": codec_config.sample_rate},
        capabilities=list(CAPABILITIES) + ([Capability.MELODY_MIDI] if saved["model"].get("score_dim") else []),
        license=("Weights: Apache-2.0. Trained on clips rendered from public-domain music21 corpus works with the "
                 "FluidR3_GM SoundFont (MIT)."),
        description=("Small text-to-music latent diffusion (DiT over the shared codec's latent, MiniLM text, timing"
                     + (", and a score it performs: --melody tune.mid)." if saved["model"].get("score_dim") else ").")),
        made_by={"recipe": "cadenza train diffusion", "command": command, "train_config": saved["train"],
                 "data": {"dir": str(data_dir), "build": data_info}, "codec": {"dir": str(codec_dir), **codec_info}},
        metrics=all_metrics)
