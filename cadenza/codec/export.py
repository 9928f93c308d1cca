"""Export of a trained codec run: ``codec.safetensors`` + ``codec.json`` (config, metrics, provenance)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from cadenza.codec.model import CodecConfig, build_codec, codec_state_dict, load_codec
from cadenza.errors import CheckpointError, InvalidConditioning
from cadenza.training import load_state, read_run_config

CODEC_WEIGHTS = "codec.safetensors"
CODEC_INFO = "codec.json"


def export_codec(run_dir: str | os.PathLike, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 command: str = "") -> Path:
    """Write the run's codec to ``out_dir``; test-split reconstruction metrics go into ``codec.json``."""
    from safetensors.torch import save_file

    from cadenza.codec.train import evaluate, load_split
    from cadenza.fileio import atomic_path, atomic_write_text

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    saved = read_run_config(run_dir)
    config = CodecConfig.from_dict(saved["codec"])
    model = build_codec(config)
    state = load_state(run_dir / "state.pt", model, None)
    if state is None:
        raise CheckpointError(f"{run_dir}: no state.pt to export (train first)")
    metrics = evaluate(model, load_split(data_dir, "test", 64), config.sample_rate)
    metrics.extra.update(probe_metrics(model, data_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / CODEC_WEIGHTS) as tmp:
        save_file(codec_state_dict(model), str(tmp))
    info = {"config": config.to_dict(), "metrics": {**asdict(metrics), "steps": int(state["step"])},
            "made_by": {"recipe": "cadenza train codec", "command": command, "data": str(data_dir),
                        "train": saved["train"]}}
    atomic_write_text(out_dir / CODEC_INFO, json.dumps(info, indent=1) + "\n")
    return out_dir


def probe_metrics(model, data_dir: str | os.PathLike, max_train: int = 1500) -> dict[str, float]:
    """The instrument probe (`cadenza.data.instrument_probe`, fitted on real training clips) on the solo test
    clips: ``probe_accuracy_real``, and after the codec: ``probe_accuracy_codec`` (the quantized path, what
    the codec LM's tokens give) and ``probe_accuracy_latent`` (the continuous latent, what diffusion decodes).
    None of them when the clips cannot fit a probe (fewer than two solo instruments, or no solo test clip)."""
    import numpy as np
    import torch

    from cadenza.data.instrument_probe import resynthesis_accuracy

    def through(path: str):
        def remake(wav: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                x = torch.from_numpy(np.asarray(wav, dtype=np.float32))[None, None]
                if path == "codec":
                    codes, scale = model.encode(x)
                    y = model.decode(codes, scale)
                else:
                    y = model.decoder(model.encoder(x))
            return y[0, 0, : x.shape[-1]].numpy()
        return remake

    model.eval()
    try:
        found = resynthesis_accuracy(data_dir, {"codec": through("codec"), "latent": through("latent")},
                                     max_train=max_train)
    except InvalidConditioning:
        return {}
    return {f"probe_accuracy_{name}": value for name, value in found.items()}


def read_codec_dir(directory: str | os.PathLike) -> tuple[CodecConfig, Path, dict]:
    """``(config, weights path, info)`` of an exported codec folder."""
    directory = Path(directory)
    try:
        info = json.loads((directory / CODEC_INFO).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{directory}: not an exported codec ({CODEC_INFO} unreadable: {exc})") from exc
    weights = directory / CODEC_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{directory}: {CODEC_WEIGHTS} is missing")
    return CodecConfig.from_dict(info["config"]), weights, info


def load_codec_dir(directory: str | os.PathLike, device: str = "cpu"):
    """The exported codec in ``directory`` (audiocraft ``EncodecModel``, eval mode)."""
    config, weights, _ = read_codec_dir(directory)
    return load_codec(weights, config, device=device)
