"""Turn a DDSP training run into a checkpoint folder (safetensors + manifest), and load one back."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from cadenza.checkpoints import CheckpointSpec, write_manifest
from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError
from cadenza.fileio import atomic_path
from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig, Instrument, InstrumentStats

CAPABILITIES = frozenset({Capability.SOURCE_AUDIO})


def save_instrument(decoder: DDSPDecoder, stats: InstrumentStats, out_dir: str | Path, name: str, *,
                    license: str, description: str, made_by: dict, metrics: dict) -> CheckpointSpec:
    """Write ``out_dir/model.safetensors`` and the manifest (config: decoder sizes + data stats)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in decoder.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})
    return write_manifest(out, name=name, family="ddsp", files={"weights": "model.safetensors"},
                          config={"decoder": decoder.config.to_dict(), "stats": stats.to_dict()},
                          capabilities=sorted(CAPABILITIES, key=str), license=license, description=description,
                          made_by=made_by, metrics=metrics)


def load_instrument(spec: CheckpointSpec, device: str | torch.device = "cpu") -> Instrument:
    """The decoder and stats of a ddsp checkpoint (sha256 verified, safetensors only)."""
    try:
        config = DecoderConfig(**spec.config["decoder"])
        stats = InstrumentStats(**spec.config.get("stats", {}))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {spec.name!r}: malformed ddsp config ({exc!r})") from exc
    decoder = DDSPDecoder(config)
    try:
        decoder.load_state_dict(spec.load_safetensors())
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {spec.name!r}: weights do not fit its config ({exc})") from exc
    return Instrument(decoder.to(device).eval(), stats)


def export_run(run_dir: str | Path, data_dir: str | Path, out_dir: str | Path, name: str, command: str) -> CheckpointSpec:
    """Checkpoint folder from ``run_dir/state.pt`` + ``config.json`` and the dataset's summary."""
    run, data = Path(run_dir), Path(data_dir)
    if not (run / "state.pt").exists():
        raise CheckpointError(f"{run}: no state.pt; train first")
    config = json.loads((run / "config.json").read_text())
    state = torch.load(run / "state.pt", weights_only=True)
    decoder = DDSPDecoder(DecoderConfig(**config["model"]))
    decoder.load_state_dict(state["model"])
    dataset = json.loads((data / "dataset.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    val = [r for r in log if "val_loss" in r]
    losses = [r for r in log if r.get("loss") is not None]
    metrics = {"steps": int(state["step"]), "train_minutes": round(float(state.get("seconds", 0.0)) / 60, 1),
               "final_train_loss": losses[-1]["loss"] if losses else None,
               "final_val_loss": val[-1]["val_loss"] if val else None,
               "loss": "multi-scale spectral (FFT 2048..64, linear + log magnitude L1)"}
    instrument = dataset["instrument"]
    from_corpus = "program" in dataset
    data_summary = {"source": dataset["source"], "seconds": round(dataset["seconds"], 1), "pieces": len(dataset["pieces"]),
                    "f0": dataset["f0"], "license": dataset["license"]}
    if from_corpus:
        data_summary.update({"gm_program": dataset["program"], "pitch_range": dataset["range"],
                             "soundfont": Path(dataset["soundfont"]).name, "collections": dataset["collections"],
                             "seed": dataset["seed"]})
    license = ("Weights: Apache-2.0. Trained on renders of music21 corpus folk melodies (public-domain sources) "
               "made with the FluidR3_GM SoundFont (MIT).") if from_corpus else f"Trained on {dataset['source']}: {dataset['license']}."
    description = (f"DDSP {instrument}: timbre transfer of a monophonic recording (voice, whistle, ...) to a "
                   f"{instrument}, and MIDI rendering with `--synth ddsp:{name.removeprefix('ddsp-')}`.")
    return save_instrument(decoder, InstrumentStats(**dataset["stats"]), out_dir, name, license=license,
                           description=description,
                           made_by={"recipe": "cadenza train ddsp", "command": command, "data": data_summary,
                                    "train_config": config["train"]},
                           metrics=metrics)
