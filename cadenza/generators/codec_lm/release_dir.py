"""MusicGen checkpoints by directory, hub id, or ``cadenza pull``.

- A **bare folder** in audiocraft's release layout (``state_dict.bin`` + ``compression_state_dict.bin``)
  or transformers' (``config.json`` + ``model.safetensors``, ``model_type: musicgen``), e.g. a copy of
  ``facebook/musicgen-small`` or a Hugging Face cache snapshot, or a **cached hub id**, works without a
  manifest: ``spec_for_release`` hashes the files (once per process) and describes them in memory.
  Nothing is written into the user's folder (it may be read-only or the HF cache); the sha256 pins go
  into every output's provenance. ``cadenza pull`` is the way to get a persistent, named manifest.
- ``pull(name)`` is the only network path: it downloads a known MusicGen release (and the T5 encoder
  its text conditioner needs) at a pinned revision into the Hugging Face cache, links the files from
  ``~/.cache/cadenza/<name>/`` and writes a manifest there that pins every file by sha256. The snapshot
  function is injectable (tests pass a fake one; they never touch the network).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cadenza.checkpoints import CheckpointSpec, write_manifest
from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError
from cadenza.hub import Snapshot

RELEASE_FILES = {"state_dict": "state_dict.bin", "compression_state_dict": "compression_state_dict.bin"}
T5_FILES = ("config.json", "model.safetensors", "spiece.model", "tokenizer.json")
T5_REQUIRED = ("config.json", "model.safetensors", "spiece.model")
MUSICGEN_LICENSE = "CC-BY-NC-4.0 (weights, Meta's MusicGen release); T5: Apache-2.0"


@dataclass(frozen=True)
class Pullable:
    """A model ``cadenza pull`` knows: its hub repository, a one-line description, and the revision (a
    commit sha) pulled; None pulls the repository's main branch, and the manifest records the commit
    that was."""

    repo: str
    description: str
    license: str = MUSICGEN_LICENSE
    revision: str | None = None


# Revisions: commits whose snapshots are known to hold the audiocraft release files (state_dict.bin and
# compression_state_dict.bin). The names without one are pulled from main, the commit recorded.
PULLABLE: dict[str, Pullable] = {
    "musicgen-small": Pullable("facebook/musicgen-small", "MusicGen 300M: text to music, 32 kHz mono",
                               revision="4c8334b02c6ec4e8664a91979669a501ec497792"),
    "musicgen-medium": Pullable("facebook/musicgen-medium", "MusicGen 1.5B: text to music, 32 kHz mono"),
    "musicgen-large": Pullable("facebook/musicgen-large", "MusicGen 3.3B: text to music, 32 kHz mono"),
    "musicgen-melody": Pullable("facebook/musicgen-melody", "MusicGen 1.5B: text + melody to music, 32 kHz mono",
                                revision="51e18546f12df76256cdf55199560a82366389fe"),
    "musicgen-melody-large": Pullable("facebook/musicgen-melody-large", "MusicGen 3.3B: text + melody, 32 kHz mono"),
    "musicgen-stereo-small": Pullable("facebook/musicgen-stereo-small", "MusicGen 300M: text to music, stereo"),
    "musicgen-stereo-medium": Pullable("facebook/musicgen-stereo-medium", "MusicGen 1.5B: text to music, stereo"),
    "musicgen-stereo-large": Pullable("facebook/musicgen-stereo-large", "MusicGen 3.3B: text to music, stereo"),
    "musicgen-stereo-melody": Pullable("facebook/musicgen-stereo-melody", "MusicGen 1.5B: text + melody, stereo"),
}

# The T5 text encoders MusicGen releases name, at the commit pulled (t5-base's files: config.json,
# model.safetensors, spiece.model, tokenizer.json).
T5_REVISIONS = {"google-t5/t5-base": "a9723ea7f1b39c1eae772870f3b547bf6ef7e6c1"}


def find_release(name: str | os.PathLike) -> Path | None:
    """The MusicGen folder ``name`` refers to (audiocraft's release files or a transformers
    ``musicgen`` folder, or a cached hub id), else None."""
    from cadenza.generators.codec_lm.transformers_layout import is_transformers_musicgen

    path = Path(name).expanduser()
    if all((path / f).is_file() for f in RELEASE_FILES.values()) or is_transformers_musicgen(path):
        return path
    text = os.fspath(name)
    if text.count("/") == 1 and not path.exists():
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        for files in (list(RELEASE_FILES.values()), ["config.json", "model.safetensors"]):
            hits = [try_to_load_from_cache(text, f) for f in files]
            if all(isinstance(h, str) for h in hits):
                return Path(hits[0]).parent
    return None


def release_capabilities(lm_cfg) -> frozenset[Capability]:
    """What a MusicGen config can honour: duration and audio prompts always; text with a text
    conditioner; melody (audio, or MIDI rendered to audio) with a chroma conditioner."""
    kinds = {str(spec.model) for name, spec in (lm_cfg.get("conditioners") or {}).items() if name != "args"}
    caps = {Capability.DURATION, Capability.PROMPT_AUDIO}
    if kinds & {"t5", "lut"}:
        caps.add(Capability.TEXT)
    if "chroma_stem" in kinds:
        caps |= {Capability.MELODY_AUDIO, Capability.MELODY_MIDI}
    return frozenset(caps)


def _release_cfg(directory: Path):
    from cadenza.generators.codec_lm.audiocraft_load import load_release_pickle, xp_cfg

    return xp_cfg(load_release_pickle(directory / RELEASE_FILES["state_dict"], mmap=True), RELEASE_FILES["state_dict"])


def spec_for_release(directory: str | os.PathLike, name: str | None = None) -> CheckpointSpec:
    """An in-memory spec for a bare MusicGen folder (files hashed now, once per process).

    A folder holding both layouts (a full snapshot of a ``facebook/musicgen-*`` repository) is read in
    the transformers layout: it is self-contained (T5 included) and pickle-free."""
    from cadenza.generators.codec_lm.audiocraft_load import cached_sha256
    from cadenza.generators.codec_lm.transformers_layout import TOKENIZER_FILES, is_transformers_musicgen

    directory = Path(directory)
    if is_transformers_musicgen(directory):
        roles = {"weights": "model.safetensors", "config": "config.json"}
        roles.update({f"tokenizer_{f.split('.')[0]}": f for f in TOKENIZER_FILES if (directory / f).is_file()})
        fmt, capabilities = "transformers", frozenset({Capability.TEXT, Capability.DURATION, Capability.PROMPT_AUDIO})
    else:
        roles, fmt = dict(RELEASE_FILES), "audiocraft"
        capabilities = release_capabilities(_release_cfg(directory))
    files = {role: {"path": rel, "sha256": cached_sha256(directory / rel)} for role, rel in roles.items()}
    return CheckpointSpec(name=os.fspath(name) if name is not None else str(directory), family="codec_lm",
                          directory=directory, files=files, config={"format": fmt}, capabilities=capabilities,
                          license="as the model's own card says (a bare folder carries no license record)",
                          description=f"MusicGen ({fmt} layout) from {directory}")


def spec_for_name(name: str) -> CheckpointSpec | None:
    """The family's folder finder: a spec for the bare MusicGen folder, HF-cache snapshot or cached hub
    id ``name``, else None."""
    release = find_release(name)
    return None if release is None else spec_for_release(release, name=name)


def pull(name: str, root: str | os.PathLike | None = None, downloader: Snapshot | None = None,
         log: Callable[[str], None] = print) -> CheckpointSpec:
    """Fetch the known model ``name`` at its pinned revision into the Hugging Face cache, link its files
    from ``root/name`` (default ``~/.cache/cadenza``) and write the manifest there (every file pinned by
    sha256). Returns the spec. The only place Cadenza downloads; without network it fails at once.

    ``downloader``: ``(repo, revision, patterns) -> snapshot folder`` (default ``hub.hf_snapshot``, after
    one quick ``hub.require_network`` check).
    """
    from cadenza import checkpoints
    from cadenza.hub import hf_snapshot, link_files, require_network

    if name not in PULLABLE:
        raise CheckpointError(f"cadenza pull knows no model {name!r}; known: {', '.join(sorted(PULLABLE))}")
    item = PULLABLE[name]
    if downloader is None:
        require_network()
        downloader = hf_snapshot
    target = Path(root if root is not None else checkpoints.USER_CHECKPOINTS) / name
    log(f"downloading {item.repo}{_at(item.revision)} into the Hugging Face cache")
    release = _snapshot(downloader, item.repo, item.revision, tuple(RELEASE_FILES.values()), RELEASE_FILES.values())
    cfg = _release_cfg(release)
    t5_names = sorted({str(spec.t5.name) for key, spec in (cfg.get("conditioners") or {}).items()
                       if key != "args" and str(spec.model) == "t5"})
    if len(t5_names) > 1:
        raise CheckpointError(f"{name}: more than one T5 encoder ({t5_names}) is not supported")
    encoders = []
    for t5 in t5_names:
        repo = t5 if "/" in t5 else f"google-t5/{t5}"
        log(f"downloading {repo}{_at(T5_REVISIONS.get(repo))} (the text encoder it needs)")
        folder = _snapshot(downloader, repo, T5_REVISIONS.get(repo), T5_FILES, T5_REQUIRED)
        present = [f for f in T5_FILES if (folder / f).is_file()]
        if "tokenizer.json" not in present:
            log(f"{repo} has no tokenizer.json; the tokenizer is built from spiece.model instead")
        encoders.append((repo, folder, present))
    link_files(release, RELEASE_FILES.values(), target)  # only now is anything written under root
    files = dict(RELEASE_FILES)
    for _, folder, present in encoders:
        link_files(folder, present, target / "t5")
        files.update({f"t5_{f.split('.')[0]}": f"t5/{f}" for f in present})
    source = {"hub": item.repo, "revision": release.name, "t5": t5_names,
              **({"t5_revision": encoders[0][1].name} if encoders else {})}
    return write_manifest(target, name=name, family="codec_lm", files=files, config={"format": "audiocraft"},
                          capabilities=sorted(release_capabilities(cfg), key=str), license=item.license,
                          description=item.description,
                          made_by={"source": source, "command": f"cadenza pull {name}",
                                   "files": "links into the Hugging Face cache"})


def _at(revision: str | None) -> str:
    return f"@{revision[:12]}" if revision else " (main)"


def _snapshot(downloader: Snapshot, repo: str, revision: str | None, patterns: tuple[str, ...],
              required) -> Path:
    """The snapshot folder of ``repo`` holding at least ``required``; CheckpointError naming what is missing."""
    folder = Path(downloader(repo, revision, tuple(patterns)))
    missing = [f for f in required if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"could not download {repo}{_at(revision)}: it has no {', '.join(missing)}")
    return folder
