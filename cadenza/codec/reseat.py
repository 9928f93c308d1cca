"""Give a model checkpoint a better decoder for its codec (`cadenza train codec --reseat DIR --from CODEC`).

A decoder trained later for the same encoder and quantizer (`cadenza train codec --decoder istft --from`)
leaves every code and latent meaning what it meant, so the codec LM and the diffusion model over it need
no retraining: their checkpoint's ``codec.safetensors`` is replaced, and its manifest records the new
codec's config, metrics and how it was made. Refused unless the encoder and quantizer are identical.
"""

from __future__ import annotations

import os
import shutil

from cadenza.checkpoints import CheckpointSpec, read_manifest, write_manifest
from cadenza.errors import CheckpointError

#: Codec config fields a reseated codec may change: the decoder's.
DECODER_FIELDS = ("decoder", "decoder_dim", "decoder_layers")


def reseat_codec(checkpoint_dir: str | os.PathLike, codec_dir: str | os.PathLike) -> CheckpointSpec:
    """Put the exported codec at ``codec_dir`` into the checkpoint at ``checkpoint_dir``; returns its new spec.

    Raises CheckpointError when the two codecs' encoders or quantizers differ in any weight or setting.
    """
    import torch
    from safetensors.torch import load_file

    from cadenza.codec.export import read_codec_dir
    from cadenza.fileio import atomic_path

    spec = read_manifest(checkpoint_dir)
    if "codec" not in spec.files or "codec" not in spec.config:
        raise CheckpointError(f"{spec.name}: the checkpoint holds no codec to replace")
    new_config, new_weights, info = read_codec_dir(codec_dir)
    old_config = dict(spec.config["codec"])
    kept = {k: v for k, v in new_config.to_dict().items() if k not in DECODER_FIELDS}
    if kept != {k: v for k, v in old_config.items() if k not in DECODER_FIELDS}:
        raise CheckpointError(f"{codec_dir}: its encoder or quantizer settings differ from {spec.name}'s codec "
                              "(only a new decoder can be reseated; a new encoder needs the models retrained)")
    old, new = load_file(spec.path("codec")), load_file(str(new_weights))
    shared = {k for k in old if not k.startswith("decoder.")}
    if shared != {k for k in new if not k.startswith("decoder.")} or any(not torch.equal(old[k], new[k]) for k in shared):
        raise CheckpointError(f"{codec_dir}: its encoder or quantizer weights differ from {spec.name}'s codec "
                              "(only a new decoder can be reseated)")
    target = spec.directory / spec.files["codec"]["path"]
    with atomic_path(target) as tmp:
        shutil.copyfile(new_weights, tmp)
    config = {**spec.config, "codec": new_config.to_dict()}
    made_by, metrics = dict(spec.made_by), dict(spec.metrics)
    made_by["command"] = join_steps(made_by.get("command", ""), str(info.get("made_by", {}).get("command", "")),
                                    f"cadenza train codec --reseat {checkpoint_dir} --from {codec_dir}")
    recorded = made_by.get("codec")
    if isinstance(recorded, dict) and "metrics" in recorded:  # {dir, config, metrics, made_by}
        made_by["codec"] = {"dir": str(codec_dir), "config": new_config.to_dict(), "metrics": info.get("metrics", {}),
                            "made_by": info.get("made_by", {})}
    else:  # the codec's own made_by, with its metrics among the model's
        made_by["codec"] = info.get("made_by", {})
        if "codec" in metrics:
            metrics["codec"] = info.get("metrics", {})
    files = {role: entry["path"] for role, entry in spec.files.items()}
    return write_manifest(spec.directory, name=spec.name, family=spec.family, files=files, config=config,
                          capabilities=sorted(spec.capabilities, key=lambda c: c.value), license=spec.license,
                          description=spec.description, made_by=made_by, metrics=metrics)


def join_steps(*commands: str) -> str:
    """Shell chains (``a && b``) joined into one, each step kept at its first occurrence: the model's and
    the codec's chains share their first steps (the audio data, the first codec), and every step is a
    resumable command whose rerun changes nothing, so a repeat only made the chain longer."""
    steps: list[str] = []
    for command in commands:
        for step in (part.strip() for part in command.split(" && ")):
            if step and step not in steps:
                steps.append(step)
    return " && ".join(steps)
