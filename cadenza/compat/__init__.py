"""Stand-ins for the two heavy dependencies some audio libraries import but we cannot install.

audiocraft imports ``xformers`` (only ``ops.unbind`` on its default torch attention backend) and
``torchaudio`` (spectrogram, mel, resample, loudness, file I/O); torchcrepe and torchfcpe import
``torchaudio`` for file I/O and resampling. torchaudio's wheels need a matching CUDA build of torch
(~7 GB), xformers a CUDA toolchain. `import_with_shims(...)` imports such a library with small, tested
replacements (built on torch, librosa, julius, pyloudnorm and soundfile) registered **only when the
real package is absent** and only while it imports. Nothing in Cadenza does this at import time.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def shims_installed() -> Iterator[list[str]]:
    """Register the stand-ins that are needed for the duration of the block, then take them out of
    ``sys.modules`` again (modules imported inside keep their references). Taking them out keeps other
    libraries' "is torchaudio installed?" checks (transformers, diffusers) answering no, truthfully.
    Yields the names installed (``[]`` when the real packages are present)."""
    # transformers asks "is torchaudio installed?" while it imports: let it ask before the stand-ins exist.
    if "transformers" not in sys.modules and importlib.util.find_spec("transformers") is not None:
        importlib.import_module("transformers")
    added: dict[str, ModuleType] = {}
    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        from cadenza.compat.torchaudio_shim import build_modules

        added.update(build_modules())
    if "xformers" not in sys.modules and importlib.util.find_spec("xformers") is None:
        from cadenza.compat.xformers_shim import build_modules

        added.update(build_modules())
    sys.modules.update(added)
    try:
        yield sorted({name.split(".")[0] for name in added})
    finally:
        for name, module in added.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def import_with_shims(*module_names: str) -> list[ModuleType]:
    """Import ``module_names`` (e.g. 'torchfcpe', 'audiocraft.models') with the stand-ins in place."""
    with shims_installed():
        return [importlib.import_module(name) for name in module_names]


def import_audiocraft_parts(*module_names: str) -> list[ModuleType]:
    """audiocraft submodules (e.g. 'audiocraft.modules.seanet', 'audiocraft.quantization') imported without
    running the ``__init__`` of ``audiocraft`` and ``audiocraft.modules``, which import all of audiocraft
    (data, models, solvers, metrics, conditioners and through them scipy, spacy, torch._dynamo: ~5 s).
    MissingDependency when audiocraft is not installed."""
    from cadenza.errors import MissingDependency

    if importlib.util.find_spec("audiocraft") is None:
        raise MissingDependency("the small codec needs audiocraft's modules; run bash scripts/setup.sh, which "
                                "installs audiocraft with --no-deps (its pins do not install on modern torch)")
    return import_skipping_inits(module_names, ("audiocraft", "audiocraft.modules"))


def import_skipping_inits(module_names: tuple[str, ...] | list[str], packages: tuple[str, ...]) -> list[ModuleType]:
    """Import ``module_names`` without running the ``__init__`` of ``packages`` (outermost first), where a
    package's ``__init__`` imports far more than the modules asked for (audiocraft's everything, diffusers'
    every transformer model).

    Stand-in package modules (empty, but finding their submodules where the real package keeps them) are
    registered while the modules import, then taken out of ``sys.modules`` again: a later plain import of
    a package runs its real ``__init__``, which reuses the modules imported here, so every class is the same
    object either way. A package already imported is used as it is."""
    stand_ins = []
    try:
        for name in packages:
            if name in sys.modules:
                continue
            spec = importlib.util.find_spec(name)  # (imports the parent package, real or stand-in)
            if spec is None or not spec.submodule_search_locations:
                raise ImportError(f"no package {name}")
            stand_ins.append(_package_stand_in(name, spec))
        return [importlib.import_module(name) for name in module_names]
    finally:
        for stand_in in reversed(stand_ins):
            if sys.modules.get(stand_in.__name__) is stand_in:
                del sys.modules[stand_in.__name__]


@contextlib.contextmanager
def without_module(name: str) -> Iterator[None]:
    """While the block runs, ``import name`` raises ImportError (a module imported already is left alone).

    For a library that imports an expensive optional module at its top inside ``try/except ImportError``:
    diffusers imports torch._dynamo (~1 s) for ``allow_in_graph``, a decorator that matters only when a
    model is compiled; Cadenza never compiles a diffusers model, and a later ``import torch._dynamo``
    (compiling a language model on a GPU) works as usual."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # the import system's "known to be missing"
    try:
        yield
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


def _package_stand_in(name: str, spec) -> ModuleType:
    """An empty package module named ``name`` whose submodules are found where ``spec`` says (its own
    ``__init__`` is not run), registered in ``sys.modules``."""
    module = ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__ = spec
    module.__package__ = name
    sys.modules[name] = module
    return module


def import_audiocraft() -> ModuleType:
    """``audiocraft`` (with its models and modules) imported with the stand-ins; MissingDependency if absent."""
    from cadenza.errors import MissingDependency

    try:
        audiocraft, _ = import_with_shims("audiocraft", "audiocraft.models")
    except ImportError as exc:
        raise MissingDependency(f"the codec LM family needs audiocraft ({exc}); run bash scripts/setup.sh, which "
                                "installs it with --no-deps (its pins do not install on modern torch)") from exc
    return audiocraft
