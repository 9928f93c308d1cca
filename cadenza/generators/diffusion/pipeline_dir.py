"""Diffusers pipeline folders: find them, describe them as a `CheckpointSpec`, load them offline.

A real pipeline (AudioLDM2, Stable Audio Open) is used in one of three ways:

1. ``checkpoints/<name>/manifest.json`` with ``config.format = "diffusers"``, ``config.pipeline`` (the
   class) and ``config.path`` (the pipeline folder, relative to the manifest; see ``write_pipeline_manifest``);
2. a bare pipeline folder passed as the model name (a ``save_pretrained`` folder or an HF-cache snapshot,
   ``.../models--org--repo/snapshots/<rev>``): its ``model_index.json`` ``_class_name`` picks the class;
3. a hub id (``cvssp/audioldm2-music``) already in the local HF cache: resolved with
   ``huggingface_hub.snapshot_download(local_files_only=True)``. Nothing is ever downloaded.

What is hashed: ``model_index.json`` and every component's JSON (configs, tokenizer files). Not the
weights: hashing 3-5 GB of safetensors would add 10-30 s to every load, and each weight file is already
checked on load (safetensors header, and every tensor's name and shape against the component config).
A same-shaped substitution of a weight file is the one change this does not catch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cadenza.checkpoints import CheckpointSpec, sha256_of, write_manifest
from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError, MissingDependency

MODEL_INDEX = "model_index.json"
CAPABILITIES = frozenset({Capability.TEXT, Capability.NEGATIVE_TEXT, Capability.DURATION, Capability.PROMPT_AUDIO})
# pipeline class -> "module:Backend" (imported only when such a model is loaded)
PIPELINES: dict[str, str] = {
    "AudioLDM2Pipeline": "cadenza.generators.diffusion.audioldm2:AudioLDM2Backend",
    "StableAudioPipeline": "cadenza.generators.diffusion.stable_audio:StableAudioBackend",
}


def pipeline_class(directory: str | os.PathLike) -> str:
    """The ``_class_name`` in ``directory/model_index.json``; CheckpointError if unreadable or unsupported."""
    path = Path(directory) / MODEL_INDEX
    try:
        name = json.loads(path.read_text())["_class_name"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable diffusers model_index.json ({exc})") from exc
    if name not in PIPELINES:
        raise CheckpointError(f"{directory}: {name} is not supported; Cadenza runs {', '.join(PIPELINES)}")
    return name


def find_pipeline(name: str) -> Path | None:
    """The pipeline folder ``name`` refers to (a folder with model_index.json, or a cached hub id), else None."""
    path = Path(name).expanduser()
    if (path / MODEL_INDEX).is_file():
        return path
    if name.count("/") == 1 and not path.exists():
        try:
            from huggingface_hub import snapshot_download
            from huggingface_hub.errors import LocalEntryNotFoundError
        except ImportError:
            return None
        try:
            snapshot = Path(snapshot_download(name, local_files_only=True))
        except (LocalEntryNotFoundError, ValueError, OSError):
            return None
        return snapshot if (snapshot / MODEL_INDEX).is_file() else None
    return None


def spec_for_name(name: str) -> CheckpointSpec | None:
    """The family's folder finder: a spec for the bare diffusers folder, HF-cache snapshot or cached hub
    id ``name``, else None."""
    pipeline = find_pipeline(name)
    return None if pipeline is None else spec_for_folder(pipeline, name=name)


def json_files(directory: Path) -> dict[str, str]:
    """role -> relative path of every JSON file of a pipeline folder (model_index + component configs)."""
    files = {}
    for path in sorted(directory.rglob("*.json")):
        rel = path.relative_to(directory).as_posix()
        files[rel.removesuffix(".json").replace("/", ".")] = rel
    if MODEL_INDEX not in files.values():
        raise CheckpointError(f"{directory} has no {MODEL_INDEX}")
    return files


def spec_for_folder(directory: str | os.PathLike, name: str | None = None) -> CheckpointSpec:
    """A spec for a bare pipeline folder (no manifest): hashes its JSON files now."""
    directory = Path(directory)
    cls = pipeline_class(directory)
    files = {role: {"path": rel, "sha256": sha256_of(directory / rel)} for role, rel in json_files(directory).items()}
    return CheckpointSpec(name=name or str(directory), family="diffusion", directory=directory, files=files,
                          config={"format": "diffusers", "pipeline": cls, "path": "."}, capabilities=CAPABILITIES,
                          license="as the model's own card says (a bare folder carries no license record)",
                          description=f"{cls} from {directory}")


def write_pipeline_manifest(directory: str | os.PathLike, name: str, *, license: str, path: str = "pipeline",
                            description: str = "", source: dict | None = None) -> CheckpointSpec:
    """Write ``directory/manifest.json`` for the pipeline folder ``directory/path`` (hashing its JSON files)."""
    directory = Path(directory)
    folder = directory / path
    cls = pipeline_class(folder)
    files = {role: f"{path}/{rel}" for role, rel in json_files(folder).items()}
    return write_manifest(directory, name=name, family="diffusion", files=files,
                          config={"format": "diffusers", "pipeline": cls, "path": path},
                          capabilities=sorted(CAPABILITIES, key=str), license=license,
                          description=description or f"{cls} (diffusers)", made_by={"source": source or {}})


def load_pipeline(directory: str | os.PathLike, device: str | None = None) -> Any:
    """Load the diffusers pipeline in ``directory`` from local files only, progress bars off."""
    try:
        import diffusers
    except ImportError as exc:
        raise MissingDependency("diffusion models need diffusers: pip install 'cadenza[diffusion]'") from exc
    cls = getattr(diffusers, pipeline_class(directory))
    try:
        pipe = cls.from_pretrained(Path(directory), local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        if isinstance(exc, ImportError) and "torchsde" in str(exc):
            raise MissingDependency("this pipeline's scheduler needs torchsde: pip install torchsde") from exc
        raise CheckpointError(f"cannot load the pipeline in {directory}: {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device or "cpu")


def load_backend(spec: CheckpointSpec, device: str | None = None) -> Any:
    """The `Backend` for a ``format: diffusers`` spec (JSON files verified against their sha256 first)."""
    import importlib

    spec.verify()
    folder = spec.directory / spec.config.get("path", ".")
    cls_name = spec.config.get("pipeline") or pipeline_class(folder)
    if cls_name != pipeline_class(folder):
        raise CheckpointError(f"{spec.name}: the manifest says {cls_name}, {folder / MODEL_INDEX} says otherwise")
    module_name, backend_name = PIPELINES[cls_name].split(":")
    backend_class = getattr(importlib.import_module(module_name), backend_name)
    return backend_class(load_pipeline(folder, device))
