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


def load_generator(spec: CheckpointSpec, device: str | None = None) -> Generator:
    """Build the generator for ``spec.family`` (imports only that family's code)."""
    if spec.family == "symbolic":
        from cadenza.generators.symbolic.generator import SymbolicGenerator

        return SymbolicGenerator.from_checkpoint(spec, device=device)
    from cadenza.errors import CheckpointError

    raise CheckpointError(f"model {spec.name!r}: the {spec.family!r} family is not available in this version of Cadenza")
