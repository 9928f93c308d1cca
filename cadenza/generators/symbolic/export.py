"""Turn a training run into a shippable checkpoint folder: safetensors weights, tokenizer.json, manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from cadenza.checkpoints import CheckpointSpec, write_manifest
from cadenza.fileio import atomic_path
from cadenza.generators.symbolic.generator import capabilities_of
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
from cadenza.tokenizers.remi import RemiTokenizer


def export_checkpoint(run_dir: str | Path, data_dir: str | Path, out_dir: str | Path, name: str,
                      metrics: dict | None = None, command: str = "", notes: str = "") -> CheckpointSpec:
    """Write ``out_dir`` from ``run_dir/state.pt`` (loaded with weights_only) and the run's config."""
    run, data, out = Path(run_dir), Path(data_dir), Path(out_dir)
    config = json.loads((run / "config.json").read_text())
    state = torch.load(run / "state.pt", weights_only=True)
    model = SymbolicTransformer(TransformerConfig(**config["model"]))
    model.load_state_dict(state["model"])
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to embed
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", "step": str(state["step"])})
    shutil.copyfile(data / "tokenizer.json", out / "tokenizer.json")
    dataset = json.loads((data / "dataset.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    val = [r for r in log if "val_loss" in r]
    base = config["train"].get("init_from")
    fine_tuned_from = None
    if base:  # a fine-tuning run: say from which weights, and what they scored
        base_manifest = json.loads((Path(base) / "manifest.json").read_text())
        fine_tuned_from = {"name": base_manifest["name"], "weights_sha256": base_manifest["files"]["weights"]["sha256"],
                           "metrics": base_manifest.get("metrics", {}), "command": base_manifest.get("made_by", {}).get("command")}
    all_metrics = {"steps": int(state["step"]), "final_train_loss": log[-1]["loss"] if log else None,
                   "final_val_loss": val[-1]["val_loss"] if val else None, **(metrics or {})}
    return write_manifest(
        out, name=name, family="symbolic", files={"weights": "model.safetensors", "tokenizer": "tokenizer.json"},
        config={"model": config["model"], "train": config["train"]},
        capabilities=sorted(capabilities_of(RemiTokenizer.load(data / "tokenizer.json")), key=str),
        license=("Weights: Apache-2.0. Trained on music21's corpus ("
                 + "; ".join(dataset["licenses"]) + "). " + ("Essen (non-commercial) included: non-commercial use only."
                                                             if any("non-commercial" in x for x in dataset["licenses"]) else
                                                             "Non-commercial (Essen) and GPL-encoded pieces excluded.")),
        description=("REMI Transformer writing folk tunes, airs, chorales and more; exact key, meter, bars, tempo; "
                     "form plans (AABB...); continues MIDI and regenerates chosen bars."),
        made_by={"recipe": "cadenza train symbolic", "data": {"source": "music21 corpus converted to MIDI",
                                                               "collections": dataset["collections"],
                                                               "splits": dataset["splits"]},
                 "command": command or "cadenza train symbolic --prepare && cadenza train symbolic && cadenza train symbolic --export",
                 "train_config": config["train"], "notes": notes,
                 **({"fine_tuned_from": fine_tuned_from} if fine_tuned_from else {})},
        metrics=all_metrics)
