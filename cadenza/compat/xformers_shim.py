"""A stand-in ``xformers`` for audiocraft on its default ``torch`` attention backend.

audiocraft imports ``from xformers import ops`` at module level but, with ``memory_efficient=False``
(the default for its torch backend and for every released MusicGen), only calls ``ops.unbind``,
which is ``torch.unbind``. The memory-efficient kernels are refused with a clear error.
"""

from __future__ import annotations

import types

import torch


class LowerTriangularMask:
    """Marker type (audiocraft only builds it on the memory-efficient path, which is refused)."""

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("xformers is not installed: use audiocraft's torch attention backend "
                                  "(memory_efficient=False)")


def memory_efficient_attention(*args, **kwargs):
    raise NotImplementedError("xformers is not installed: use audiocraft's torch attention backend "
                              "(memory_efficient=False)")


def _give_specs(modules: dict[str, types.ModuleType]) -> None:
    """``importlib.util.find_spec`` raises on a module whose ``__spec__`` is None; give each one."""
    import importlib.machinery

    for name, module in modules.items():
        module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, origin="cadenza.compat")


def build_modules() -> dict[str, types.ModuleType]:
    """``{'xformers': ..., 'xformers.ops': ...}`` ready for ``sys.modules``."""
    root = types.ModuleType("xformers")
    root.__doc__ = __doc__
    root.__cadenza_shim__ = True
    ops = types.ModuleType("xformers.ops")
    ops.unbind = torch.unbind
    ops.LowerTriangularMask = LowerTriangularMask
    ops.memory_efficient_attention = memory_efficient_attention
    root.ops = ops
    modules = {"xformers": root, "xformers.ops": ops}
    _give_specs(modules)
    return modules
