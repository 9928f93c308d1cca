"""The registry of generator families: the built-in four, listed here, plus outside ones found by the
``cadenza.families`` entry point group.

An outside package adds a family without touching Cadenza: it ships a ``Family`` object and names it
in its metadata, e.g. in ``pyproject.toml``::

    [project.entry-points."cadenza.families"]
    toy = "cadenza_toy.family:FAMILY"

Only descriptor modules are imported to list the families (no model code, no torch); a family's
generator is imported when one of its models is loaded.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from types import MappingProxyType

from cadenza.checkpoints import CheckpointSpec
from cadenza.errors import CheckpointError
from cadenza.generators.base import Generator
from cadenza.generators.family import Family, Recipe

# The built-in families, in the order they are listed: each module holds ``FAMILY``.
BUILTIN: tuple[str, ...] = (
    "cadenza.generators.symbolic.family",
    "cadenza.generators.codec_lm.family",
    "cadenza.generators.diffusion.family",
    "cadenza.generators.ddsp.family",
)
ENTRY_POINT_GROUP = "cadenza.families"

# Recipes for parts that serve several families (training data, the shared codec): no one family owns them.
SHARED_RECIPES: dict[str, Recipe] = {
    "audio-data": Recipe("cadenza.data.audio_recipe",
                         "render corpus MIDI into captioned audio clips (codec, diffusion, ddsp data)"),
    "codec": Recipe("cadenza.codec.recipe", "the small neural audio codec (SEANet + RVQ)"),
}

# sys.path -> (families, why each broken plugin was left out): entry points are read once per search path,
# and a plugin put on the path later (tests, a notebook) is found by the next call.
_cache: dict[tuple[str, ...], tuple[dict[str, Family], dict[str, str]]] = {}


def _discover() -> tuple[dict[str, Family], dict[str, str]]:
    key = tuple(sys.path)
    if key in _cache:
        return _cache[key]
    found: dict[str, Family] = {}
    for module_name in BUILTIN:
        family = importlib.import_module(module_name).FAMILY
        found[family.name] = family
    broken: dict[str, str] = {}
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            family = entry.load()
        except Exception as exc:  # noqa: BLE001 - a plugin's own failure: reported (warning, unknown-family error)
            broken[entry.name] = f"{entry.value} failed to load: {type(exc).__name__}: {exc}"
            continue
        if not isinstance(family, Family):
            broken[entry.name] = f"{entry.value} is a {type(family).__name__}, not a cadenza Family"
        elif family.name in found:
            if found[family.name] is not family:
                broken[entry.name] = f"{entry.value} names family {family.name!r}, which is taken"
        else:
            found[family.name] = family
    for name, why in broken.items():
        warnings.warn(f"cadenza family plugin {name!r} left out: {why}", RuntimeWarning, stacklevel=3)
    _cache[key] = (found, broken)
    return found, broken


def families() -> MappingProxyType[str, Family]:
    """Every family, by name: the built-in four first, then plugins by name."""
    return MappingProxyType(_discover()[0])


def family(name: str) -> Family:
    """The family ``name``; CheckpointError naming the known ones (and any plugin that failed to load)."""
    found, broken = _discover()
    if name in found:
        return found[name]
    message = f"unknown family {name!r} (this installation knows {', '.join(found)})"
    if broken:
        message += "; left out: " + "; ".join(f"{k}: {v}" for k, v in broken.items())
    raise CheckpointError(message)


def load_generator(spec: CheckpointSpec, device: str | None = None) -> Generator:
    """Build the generator for ``spec`` (imports only its family's code)."""
    try:
        generator_family = family(spec.family)
    except CheckpointError as exc:
        raise CheckpointError(f"model {spec.name!r}: {exc}") from None
    try:
        return generator_family.generator_class().from_checkpoint(spec, device=device)
    except RuntimeError as exc:
        # torch's load_state_dict: the weights do not fit the model the manifest's config describes (an
        # edited config, weights from another size). Hashes match, so only this check can catch it.
        if "state_dict" not in str(exc) and "size mismatch" not in str(exc):
            raise
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line or "Missing" in line
                      or "Unexpected" in line), str(exc).splitlines()[0])
        raise CheckpointError(f"model {spec.name!r}: its weights do not fit the model its manifest's config describes "
                              f"(was the config edited, or the weights taken from another model?): {first[:300]}") from None


def find_folder(name: str) -> CheckpointSpec | None:
    """A spec for a model folder without a manifest (a bare release, an HF-cache snapshot), asking each
    family that can read such folders; None if none can."""
    for candidate in families().values():
        spec = candidate.find_folder(name)
        if spec is not None:
            return spec
    return None


def pullable() -> dict[str, str]:
    """Every model ``cadenza pull`` can download: name -> one line."""
    return {name: line for f in families().values() for name, line in f.pullable.items()}


def pull(name: str, root: str | None = None, log: Callable[[str], None] = print) -> CheckpointSpec:
    """Download the pullable model ``name`` (the only place Cadenza downloads)."""
    for candidate in families().values():
        if name in candidate.pullable:
            return candidate.pull_model(name, root=root, log=log)
    raise CheckpointError(f"no model named {name!r} to pull; known: {', '.join(sorted(pullable())) or 'none'}")


def train_recipes() -> dict[str, Recipe]:
    """Every training recipe: the shared ones, then each family's."""
    recipes = dict(SHARED_RECIPES)
    for f in families().values():
        for name, recipe in f.recipes.items():
            recipes.setdefault(name, recipe)
    return recipes
