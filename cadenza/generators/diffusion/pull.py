"""``cadenza pull`` for diffusion pipelines: download a known diffusers repository into
``~/.cache/cadenza/<name>/pipeline/`` and write ``<name>/manifest.json`` (``write_pipeline_manifest``).

Only the pipeline's components are fetched (``model_index.json`` and each component folder's JSON,
safetensors and tokenizer files), not the single-file checkpoints some repositories also keep at their
root (Stable Audio Open's 4.8 GB ``model.safetensors`` / ``model.ckpt``). The downloader is injectable:
tests pass a fake one and never touch the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cadenza.checkpoints import CheckpointSpec
from cadenza.errors import CheckpointError

PIPELINE_FOLDER = "pipeline"
ALLOW_PATTERNS = ("model_index.json", "*/*.json", "*/*.safetensors", "*/*.txt", "*/*.model")


@dataclass(frozen=True)
class PullablePipeline:
    repo: str
    description: str
    license: str


PULLABLE: dict[str, PullablePipeline] = {
    "audioldm2-music": PullablePipeline("cvssp/audioldm2-music", "AudioLDM2 (music): text to music, 16 kHz mono",
                                        "CC-BY-NC-SA-4.0 (cvssp/audioldm2-music)"),
    "audioldm2": PullablePipeline("cvssp/audioldm2", "AudioLDM2: text to audio, 16 kHz mono",
                                  "CC-BY-NC-SA-4.0 (cvssp/audioldm2)"),
    "stable-audio-open-1.0": PullablePipeline(
        "stabilityai/stable-audio-open-1.0", "Stable Audio Open 1.0: text to audio, 44.1 kHz stereo, up to 47 s",
        "Stability AI Community License (gated on the hub: accept its terms there and `huggingface-cli login` first)"),
}

# (hub repo, target folder, allowed file patterns) -> the folder the files are in
PipelineDownloader = Callable[[str, Path, tuple[str, ...]], Path]


def hf_snapshot(repo: str, target: Path, patterns: tuple[str, ...]) -> Path:
    """Download the files of ``repo`` matching ``patterns`` into ``target`` (huggingface_hub checks sha256)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, local_dir=target, allow_patterns=list(patterns)))


def pull_pipeline(name: str, root: str | os.PathLike | None = None, downloader: PipelineDownloader | None = None,
                  log: Callable[[str], None] = print) -> CheckpointSpec:
    """Fetch the known pipeline ``name`` into ``root/name/pipeline`` and write its manifest; returns the spec."""
    from cadenza import checkpoints
    from cadenza.generators.diffusion.pipeline_dir import write_pipeline_manifest

    if name not in PULLABLE:
        raise CheckpointError(f"no diffusion pipeline named {name!r} to pull; known: {', '.join(sorted(PULLABLE))}")
    item = PULLABLE[name]
    target = Path(root if root is not None else checkpoints.USER_CHECKPOINTS) / name
    log(f"downloading {item.repo} (pipeline components only) into {target / PIPELINE_FOLDER}")
    try:
        folder = (downloader or hf_snapshot)(item.repo, target / PIPELINE_FOLDER, ALLOW_PATTERNS)
    except OSError as exc:  # huggingface_hub's HTTP, gating and missing-entry errors are OSErrors
        raise CheckpointError(f"could not download {item.repo}: {exc}") from exc
    if Path(folder).resolve() != (target / PIPELINE_FOLDER).resolve():
        raise CheckpointError(f"the download of {item.repo} landed in {folder}, not {target / PIPELINE_FOLDER}")
    return write_pipeline_manifest(target, name, license=item.license, path=PIPELINE_FOLDER,
                                   description=item.description,
                                   source={"hub": item.repo, "command": f"cadenza pull {name}"})
