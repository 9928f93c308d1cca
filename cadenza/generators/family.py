"""`Family`: everything the rest of Cadenza needs to know about one generator family, as plain data.

Each family describes itself in one small module, ``<family folder>/family.py``, holding ``FAMILY =
Family(...)``. The built-in four are listed in ``generators.families``; an outside package joins by
naming its descriptor in the ``cadenza.families`` entry point group (see ``families``).

Code is named, never imported, here: the generator class, training recipes, folder finders and pull
functions are ``"module:attribute"`` strings imported only when used, so listing the families imports
no torch, and a missing optional dependency of one family never breaks another. A descriptor module
must keep that promise too: it imports only light modules (no torch, no model code).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

from cadenza.conditioning import Sampling

if TYPE_CHECKING:
    from cadenza.checkpoints import CheckpointSpec

OUTPUTS = ("midi", "audio")
# Sampling fields every model honours; a family lists only the others it honours.
UNIVERSAL_SAMPLING = frozenset({"seed", "num_samples"})


def resolve(target: str) -> Any:
    """The object a ``"package.module:attribute"`` string names (importing the module now)."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class Recipe:
    """A training recipe: ``module`` exposes ``add_arguments(parser)`` and ``run(args) -> int`` (its
    docstring is the recipe's ``--help`` text); ``help`` is its one line in ``cadenza train --help``.
    The module is imported by the first method call, so it may import heavy code at module level
    only if ``cadenza train --help`` may import it too (the built-in recipes keep it light)."""

    module: str
    help: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def description(self) -> str:
        return (self.load().__doc__ or self.help).strip()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        self.load().add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return self.load().run(args)


@dataclass(frozen=True)
class Family:
    """One generator family.

    ``name``: what manifests say in ``"family"``. ``output``: 'midi' or 'audio'. ``generator``: the
    ``"module:Class"`` with a ``from_checkpoint(spec, device=None)`` classmethod. ``sampling``: the
    `Sampling` fields its models honour beyond seed and num_samples (anything else set is refused).
    ``recipes``: recipe name (``cadenza train NAME``) -> `Recipe`. ``find``: ``"module:function"``
    taking a model name or path and returning a `CheckpointSpec` for a folder without a manifest
    (a bare pretrained release, an HF-cache snapshot) or None. ``pull``: ``"module:function"``
    ``(name, root=None, log=print) -> CheckpointSpec`` that downloads one of ``pullable`` (name ->
    one line). ``choices``: suggestions for the app's free-text widgets (e.g. 'scheduler', 'style'
    -> names); other values may still be typed and are checked by the model. ``options``:
    ``"module:Class"`` of the family's own per-call options (a frozen dataclass, passed to its
    generator's ``generate(..., options=...)``); Studio builds it from keyword arguments.
    ``name_prefix``: the prefix its model names share (``'ddsp-'``), so where one of its models is
    wanted as an instrument, 'violin' and 'ddsp:violin' both find 'ddsp-violin'.
    """

    name: str
    output: str
    generator: str
    sampling: frozenset[str] = frozenset()
    description: str = ""
    recipes: Mapping[str, Recipe] = field(default_factory=dict)
    find: str | None = None
    pull: str | None = None
    pullable: Mapping[str, str] = field(default_factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    options: str | None = None
    name_prefix: str = ""

    def __post_init__(self) -> None:
        # Checked here so an outside family with a typo fails where it is declared, naming itself.
        known = {f.name for f in fields(Sampling)} - UNIVERSAL_SAMPLING
        problems = []
        if not self.name or ":" in self.name:
            problems.append("name must be a non-empty word without ':'")
        if self.output not in OUTPUTS:
            problems.append(f"output must be one of {', '.join(OUTPUTS)}, not {self.output!r}")
        for label, target in (("generator", self.generator), ("find", self.find), ("pull", self.pull),
                              ("options", self.options)):
            if target is not None and (not isinstance(target, str) or target.count(":") != 1):
                problems.append(f"{label} must be a 'module:attribute' string, not {target!r}")
        unknown = set(self.sampling) - known
        if unknown:
            problems.append(f"sampling names unknown Sampling fields {sorted(unknown)} "
                            f"(known: {', '.join(sorted(known))})")
        if self.pullable and self.pull is None:
            problems.append("pullable names need a pull function")
        if problems:
            raise ValueError(f"family {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "sampling", frozenset(self.sampling))
        object.__setattr__(self, "recipes", MappingProxyType(dict(self.recipes)))
        object.__setattr__(self, "pullable", MappingProxyType(dict(self.pullable)))
        object.__setattr__(self, "choices", MappingProxyType({k: tuple(v) for k, v in self.choices.items()}))

    def generator_class(self) -> type:
        """The generator class (imports the family's code now)."""
        return resolve(self.generator)

    def find_folder(self, name: str) -> CheckpointSpec | None:
        """A spec for ``name`` if it is a folder (or cached hub id) of this family that has no manifest."""
        return None if self.find is None else resolve(self.find)(name)

    def pull_model(self, name: str, root: str | None = None, log: Callable[[str], None] = print) -> CheckpointSpec:
        """Download the pullable model ``name`` into ``root/name`` (default ``~/.cache/cadenza``)."""
        if self.pull is None:
            raise LookupError(f"family {self.name!r} pulls nothing")
        return resolve(self.pull)(name, root=root, log=log)

    def make_options(self, values: Mapping[str, Any]) -> Any:
        """The family's per-call options object from keyword ``values`` (None when there are none)."""
        from cadenza.errors import UnsupportedConditioning

        if self.options is None:
            if values:
                raise UnsupportedConditioning(f"{self.name} models take no options such as {', '.join(sorted(values))}")
            return None
        cls = resolve(self.options)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UnsupportedConditioning(f"{self.name} models have no option {', '.join(unknown)}; "
                                          f"their options are: {', '.join(sorted(names))}")
        return cls(**values)
