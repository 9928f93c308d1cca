"""MusicGen checkpoints by directory, hub id, or ``cadenza pull``.

- A **bare folder** in audiocraft's release layout (``state_dict.bin`` + ``compression_state_dict.bin``)
  or transformers' (``config.json`` + ``model.safetensors``, ``model_type: musicgen``), e.g. a copy of
  ``facebook/musicgen-small`` or a Hugging Face cache snapshot, or a **cached hub id**, works without a
  manifest: ``spec_for_release`` hashes the files (once per process) and describes them in memory.
  Nothing is written into the user's folder (it may be read-only or the HF cache); the sha256 pins go
  into every output's provenance. ``cadenza pull`` is the way to get a persistent, named manifest.
- ``pull(name)`` is the only network path: it downloads a known MusicGen release (and the T5 encoder
  its text conditioner needs) into ``~/.cache/cadenza/<name>/`` and writes a manifest that pins every
  file by sha256. The downloader is injectable (tests pass a fake one; they never touch the network).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cadenza.checkpoints import CheckpointSpec, write_manifest
from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError

RELEASE_FILES = {"state_dict": "state_dict.bin", "compression_state_dict": "compression_state_dict.bin"}
T5_FILES = ("config.json", "model.safetensors", "spiece.model", "tokenizer.json")
T5_REQUIRED = ("config.json", "model.safetensors", "spiece.model")
MUSICGEN_LICENSE = "CC-BY-NC-4.0 (weights, Meta's MusicGen release); T5: Apache-2.0"


@dataclass(frozen=True)
class Pullable:
    """A model ``cadenza pull`` knows: its hub repository and a one-line description."""

    repo: str
    description: str
    license: str = MUSICGEN_LICENSE


PULLABLE: dict[str, Pullable] = {
    "musicgen-small": Pullable("facebook/musicgen-small", "MusicGen 300M: text to music, 32 kHz mono"),
    "musicgen-medium": Pullable("facebook/musicgen-medium", "MusicGen 1.5B: text to music, 32 kHz mono"),
    "musicgen-large": Pullable("facebook/musicgen-large", "MusicGen 3.3B: text to music, 32 kHz mono"),
    "musicgen-melody": Pullable("facebook/musicgen-melody", "MusicGen 1.5B: text + melody to music, 32 kHz mono"),
    "musicgen-melody-large": Pullable("facebook/musicgen-melody-large", "MusicGen 3.3B: text + melody, 32 kHz mono"),
    "musicgen-stereo-small": Pullable("facebook/musicgen-stereo-small", "MusicGen 300M: text to music, stereo"),
    "musicgen-stereo-medium": Pullable("facebook/musicgen-stereo-medium", "MusicGen 1.5B: text to music, stereo"),
    "musicgen-stereo-large": Pullable("facebook/musicgen-stereo-large", "MusicGen 3.3B: text to music, stereo"),
    "musicgen-stereo-melody": Pullable("facebook/musicgen-stereo-melody", "MusicGen 1.5B: text + melody, stereo"),
}

# (hub repo, file name, target directory) -> local path of the downloaded file
Downloader = Callable[[str, str, Path], Path]


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


def hf_downloader(repo: str, filename: str, target: Path) -> Path:
    """Download ``repo``/``filename`` into ``target`` (huggingface_hub verifies LFS files' sha256)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename, local_dir=target))


def pull(name: str, root: str | os.PathLike | None = None, downloader: Downloader | None = None,
         log: Callable[[str], None] = print) -> CheckpointSpec:
    """Fetch the known model ``name`` into ``root/name`` (default ``~/.cache/cadenza``) and write its
    manifest (every file pinned by sha256). Returns the spec. The only place Cadenza downloads."""
    from cadenza import checkpoints

    if name not in PULLABLE:
        raise CheckpointError(f"cadenza pull knows no model {name!r}; known: {', '.join(sorted(PULLABLE))}")
    item = PULLABLE[name]
    downloader = downloader or hf_downloader
    target = Path(root if root is not None else checkpoints.USER_CHECKPOINTS) / name
    target.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for role, filename in RELEASE_FILES.items():
        log(f"downloading {item.repo}/{filename}")
        _fetch(downloader, item.repo, filename, target)
        files[role] = filename
    cfg = _release_cfg(target)
    t5_names = sorted({str(spec.t5.name) for key, spec in (cfg.get("conditioners") or {}).items()
                       if key != "args" and str(spec.model) == "t5"})
    if len(t5_names) > 1:
        raise CheckpointError(f"{name}: more than one T5 encoder ({t5_names}) is not supported")
    for t5 in t5_names:
        repo = t5 if "/" in t5 else f"google-t5/{t5}"
        for filename in T5_FILES:
            log(f"downloading {repo}/{filename}")
            try:
                _fetch(downloader, repo, filename, target / "t5")
            except CheckpointError:
                if filename in T5_REQUIRED:
                    raise
                log(f"{repo} has no {filename}; the tokenizer is built from spiece.model instead")
                continue
            files[f"t5_{filename.split('.')[0]}"] = f"t5/{filename}"
    return write_manifest(target, name=name, family="codec_lm", files=files, config={"format": "audiocraft"},
                          capabilities=sorted(release_capabilities(cfg), key=str), license=item.license,
                          description=item.description,
                          made_by={"source": {"hub": item.repo, "t5": t5_names}, "command": f"cadenza pull {name}"})


def _fetch(downloader: Downloader, repo: str, filename: str, target: Path) -> None:
    """Download ``repo``/``filename`` to ``target/filename``; a failed download is a CheckpointError."""
    try:
        downloaded = downloader(repo, filename, target)
    except OSError as exc:  # huggingface_hub's HTTP and missing-entry errors are OSErrors
        raise CheckpointError(f"could not download {repo}/{filename}: {exc}") from exc
    _place(downloaded, target / filename)


def _place(downloaded: Path, wanted: Path) -> None:
    """Make the downloaded file live at ``wanted`` (downloaders may write to a subfolder or a cache)."""
    downloaded = Path(downloaded)
    if downloaded.resolve() == wanted.resolve():
        return
    wanted.parent.mkdir(parents=True, exist_ok=True)
    os.replace(downloaded, wanted) if downloaded.parent.resolve() == wanted.parent.resolve() else _copy(downloaded, wanted)


def _copy(source: Path, wanted: Path) -> None:
    import shutil

    from cadenza.fileio import atomic_path

    with atomic_path(wanted) as tmp:
        shutil.copyfile(source, tmp)
