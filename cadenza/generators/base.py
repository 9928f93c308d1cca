"""The contract every generator family fulfils, and the explicit table of families."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling
from cadenza.outputs import AudioOutput, MidiOutput

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class Callbacks:
    """``progress(done, total)`` after each step; ``should_cancel()`` polled before each step."""

    progress: ProgressFn | None = None
    should_cancel: CancelFn | None = None


class Generator(Protocol):
    """A loaded model that turns (Conditioning, Sampling) into outputs. Holds no per-call state."""

    spec: CheckpointSpec

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def generate(self, conditioning: Conditioning, sampling: Sampling,
                 callbacks: Callbacks = Callbacks()) -> list[MidiOutput | AudioOutput]: ...


# family -> "module:Class" with a ``from_checkpoint(spec, device=None)`` classmethod. Each family's code
# is imported only when one of its models is loaded, so a missing optional dependency of one family
# never breaks another.
FAMILIES: dict[str, str] = {
    "symbolic": "cadenza.generators.symbolic.generator:SymbolicGenerator",
    "codec_lm": "cadenza.generators.codec_lm.generator:CodecLMGenerator",
    "diffusion": "cadenza.generators.diffusion.generator:DiffusionGenerator",
    "ddsp": "cadenza.generators.ddsp.generator:DDSPGenerator",
}


def load_generator(spec: CheckpointSpec, device: str | None = None) -> Generator:
    """Build the generator for ``spec.family`` (imports only that family's code)."""
    import importlib

    from cadenza.errors import CheckpointError

    target = FAMILIES.get(spec.family)
    if target is None:
        raise CheckpointError(f"model {spec.name!r}: unknown family {spec.family!r} "
                              f"(this version of Cadenza knows {', '.join(sorted(FAMILIES))})")
    module_name, class_name = target.split(":")
    generator_class = getattr(importlib.import_module(module_name), class_name)
    return generator_class.from_checkpoint(spec, device=device)
