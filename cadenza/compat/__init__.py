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


def import_audiocraft() -> ModuleType:
    """``audiocraft`` (with its models and modules) imported with the stand-ins; MissingDependency if absent."""
    from cadenza.errors import MissingDependency

    try:
        audiocraft, _ = import_with_shims("audiocraft", "audiocraft.models")
    except ImportError as exc:
        raise MissingDependency(f"the codec LM family needs audiocraft ({exc}); run bash scripts/setup.sh, which "
                                "installs it with --no-deps (its pins do not install on modern torch)") from exc
    return audiocraft
