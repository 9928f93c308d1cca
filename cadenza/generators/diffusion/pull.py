"""``cadenza pull`` for diffusion pipelines: download a known diffusers repository at a pinned revision
into the Hugging Face cache, link it as ``~/.cache/cadenza/<name>/pipeline`` and write
``<name>/manifest.json`` (``write_pipeline_manifest``).

Only the pipeline's components are fetched (``model_index.json`` and each component folder's JSON,
safetensors and tokenizer files), not the single-file checkpoints some repositories also keep at their
root (Stable Audio Open's 4.8 GB ``model.safetensors`` / ``model.ckpt``). The snapshot function is
injectable: tests pass a fake one and never touch the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cadenza.checkpoints import CheckpointSpec
from cadenza.errors import CheckpointError
from cadenza.hub import Snapshot

PIPELINE_FOLDER = "pipeline"
ALLOW_PATTERNS = ("model_index.json", "*/*.json", "*/*.safetensors", "*/*.txt", "*/*.model")


@dataclass(frozen=True)
class PullablePipeline:
    """A pipeline ``cadenza pull`` knows; ``revision``: the commit pulled (None: main, the commit recorded)."""

    repo: str
    description: str
    license: str
    revision: str | None = None


# Revisions: commits whose snapshots are known to hold the diffusers layout (model_index.json and the
# component folders). The names without one are pulled from main, the commit recorded.
PULLABLE: dict[str, PullablePipeline] = {
    "audioldm2-music": PullablePipeline("cvssp/audioldm2-music", "AudioLDM2 (music): text to music, 16 kHz mono",
                                        "CC-BY-NC-SA-4.0 (cvssp/audioldm2-music)"),
    "audioldm2": PullablePipeline("cvssp/audioldm2", "AudioLDM2: text to audio, 16 kHz mono",
                                  "CC-BY-NC-SA-4.0 (cvssp/audioldm2)",
                                  revision="c8e7e189d324425c05c4c2f81214041ef4107983"),
    "stable-audio-open-1.0": PullablePipeline(
        "stabilityai/stable-audio-open-1.0", "Stable Audio Open 1.0: text to audio, 44.1 kHz stereo, up to 47 s",
        "Stability AI Community License (gated on the hub: accept its terms there and `huggingface-cli login` first)",
        revision="67351841772475731424cf358c9fb785716ac78f"),
}


def pull_pipeline(name: str, root: str | os.PathLike | None = None, downloader: Snapshot | None = None,
                  log: Callable[[str], None] = print) -> CheckpointSpec:
    """Fetch the known pipeline ``name`` at its pinned revision into the Hugging Face cache, link it as
    ``root/name/pipeline`` and write the manifest; returns the spec. Without network it fails at once.

    ``downloader``: ``(repo, revision, patterns) -> snapshot folder`` (default ``hub.hf_snapshot``, after
    one quick ``hub.require_network`` check).
    """
    from cadenza import checkpoints
    from cadenza.generators.diffusion.pipeline_dir import MODEL_INDEX, write_pipeline_manifest
    from cadenza.hub import hf_snapshot, link, require_network

    if name not in PULLABLE:
        raise CheckpointError(f"no diffusion pipeline named {name!r} to pull; known: {', '.join(sorted(PULLABLE))}")
    item = PULLABLE[name]
    if downloader is None:
        require_network()
        downloader = hf_snapshot
    target = Path(root if root is not None else checkpoints.USER_CHECKPOINTS) / name
    at = f"@{item.revision[:12]}" if item.revision else " (main)"
    log(f"downloading {item.repo}{at} (pipeline components only) into the Hugging Face cache")
    folder = Path(downloader(item.repo, item.revision, ALLOW_PATTERNS))
    if not (folder / MODEL_INDEX).is_file():
        raise CheckpointError(f"could not download {item.repo}{at}: it has no {MODEL_INDEX} (not a diffusers pipeline)")
    link(folder, target / PIPELINE_FOLDER)  # only now is anything written under root
    return write_pipeline_manifest(target, name, license=item.license, path=PIPELINE_FOLDER,
                                   description=item.description,
                                   source={"hub": item.repo, "revision": folder.name, "command": f"cadenza pull {name}",
                                           "files": "a link into the Hugging Face cache"})
