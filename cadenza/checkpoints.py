"""Checkpoints: ``<dir>/<name>/manifest.json`` read into one `CheckpointSpec`, files verified by sha256.

A manifest names the family, the files and their sha256, the model config, the capabilities, the
license, and how the weights were made (recipe, data, command, metrics) or where they came from.
Any family name is read here: which families exist is the generator registry's business
(``generators.families``), so this core module never imports a family.
Weights load only through safetensors; a pickle is never unpickled here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cadenza.conditioning import Capability
from cadenza.errors import CheckpointError
from cadenza.fileio.hashes import cached_sha256, sha256_of

__all__ = ["CheckpointSpec", "discover", "model_dirs", "read_manifest", "sha256_of", "write_manifest"]

MANIFEST = "manifest.json"
REPO_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
USER_CHECKPOINTS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza"


@dataclass(frozen=True)
class CheckpointSpec:
    """One model on disk. ``files`` maps a role ('weights', 'tokenizer') to ``{"path", "sha256"}``."""

    name: str
    family: str
    directory: Path
    files: dict[str, dict]
    config: dict
    capabilities: frozenset[Capability]
    license: str
    description: str = ""
    made_by: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The weights' sha256 (the identity recorded in every output's provenance)."""
        return self.files.get("weights", next(iter(self.files.values()), {})).get("sha256", "")

    def path(self, role: str) -> Path:
        if role not in self.files:
            raise CheckpointError(f"checkpoint {self.name!r} has no {role!r} file (has: {', '.join(self.files)})")
        return self.directory / self.files[role]["path"]

    def verify(self) -> None:
        """Check every listed file exists and matches its sha256; raise CheckpointError otherwise. A file
        verified before with the same size and mtime is not read again (``fileio.hashes``)."""
        for role, entry in self.files.items():
            path = self.directory / entry["path"]
            if not path.is_file():
                raise CheckpointError(f"checkpoint {self.name!r}: {role} file {path} is missing")
            actual = cached_sha256(path)
            if actual != entry["sha256"]:
                raise CheckpointError(f"checkpoint {self.name!r}: {path.name} has sha256 {actual[:12]}..., "
                                      f"the manifest says {entry['sha256'][:12]}...: the file is corrupt or was replaced")

    def load_safetensors(self, role: str = "weights") -> dict:
        """The tensors of file ``role`` after sha256 verification of the whole checkpoint."""
        from safetensors.torch import load_file

        self.verify()
        path = self.path(role)
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path.name}: only .safetensors weights are loaded (no pickles)")
        return load_file(path)


def read_manifest(directory: str | os.PathLike) -> CheckpointSpec:
    """Parse ``directory/manifest.json``; raise CheckpointError with the reason if it is malformed."""
    directory = Path(directory)
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {directory / MANIFEST}: {exc}") from exc
    try:
        family = data["family"]
        if not isinstance(family, str) or not family:
            raise CheckpointError(f"{directory / MANIFEST}: 'family' must name a generator family, not {family!r}")
        return CheckpointSpec(
            name=data.get("name", directory.name), family=family, directory=directory,
            files={role: {"path": f["path"], "sha256": f["sha256"]} for role, f in data["files"].items()},
            config=data.get("config", {}), capabilities=frozenset(Capability(c) for c in data.get("capabilities", [])),
            license=data["license"], description=data.get("description", ""), made_by=data.get("made_by", {}),
            metrics=data.get("metrics", {}))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{directory / MANIFEST} is malformed: {exc!r}") from exc


def write_manifest(directory: str | os.PathLike, *, name: str, family: str, files: dict[str, str], config: dict,
                   capabilities: list[Capability], license: str, description: str = "", made_by: dict | None = None,
                   metrics: dict | None = None) -> CheckpointSpec:
    """Hash ``files`` (role -> path relative to ``directory``) and write the manifest; returns the spec."""
    from cadenza.fileio import atomic_write_text

    directory = Path(directory)
    data = {"name": name, "family": family, "license": license, "description": description,
            "files": {role: {"path": rel, "sha256": sha256_of(directory / rel)} for role, rel in files.items()},
            "config": config, "capabilities": sorted(c.value for c in capabilities),
            "made_by": made_by or {}, "metrics": metrics or {}}
    atomic_write_text(directory / MANIFEST, json.dumps(data, indent=1) + "\n")
    return read_manifest(directory)


def model_dirs(extra: list[str | os.PathLike] | None = None) -> list[Path]:
    """Where models are looked up, in order: ``extra``, ``$CADENZA_MODELS`` (os.pathsep-separated),
    the repository's ``checkpoints/``, then ``~/.cache/cadenza``."""
    dirs = [Path(p) for p in (extra or [])]
    dirs += [Path(p) for p in os.environ.get("CADENZA_MODELS", "").split(os.pathsep) if p]
    dirs += [REPO_CHECKPOINTS, USER_CHECKPOINTS]
    return dirs


def discover(dirs: list[Path]) -> dict[str, CheckpointSpec]:
    """Every ``<dir>/<name>/manifest.json`` under ``dirs``; the first one found wins a name.

    Malformed manifests are skipped here (so one bad folder does not hide the others) and reported
    when that model is asked for by name.
    """
    found: dict[str, CheckpointSpec] = {}
    for root in dirs:
        if not root.is_dir():
            continue
        for manifest in sorted(root.glob(f"*/{MANIFEST}")):
            try:
                spec = read_manifest(manifest.parent)
            except CheckpointError:
                continue
            found.setdefault(spec.name, spec)
    return found
