"""The contract every generator family fulfils (the families themselves are listed in ``families``)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from cadenza.checkpoints import CheckpointSpec
from cadenza.conditioning import Capability, Conditioning, Sampling, require_supported
from cadenza.outputs import AudioOutput, MidiOutput, Provenance

if TYPE_CHECKING:
    import torch

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


# ---- the per-call prologue and epilogue every generator shares ------------------------------------------
# torch is imported inside these functions: ``import cadenza`` (which imports this module) stays free of it,
# so ``cadenza models`` and ``--help`` start fast.

def resolve_seed(sampling: Sampling) -> int:
    """The call's seed: ``sampling.seed``, or a fresh one drawn from torch's global generator (each output's
    provenance records it, so a drawn seed reproduces too)."""
    if sampling.seed is not None:
        return sampling.seed
    import torch

    return int(torch.randint(0, 2**31 - 1, (1,)).item())


def make_rng(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The call's random source: a ``torch.Generator`` on ``device`` (where the model samples) seeded
    with ``seed``; never torch's global generator."""
    import torch

    return torch.Generator(device=device).manual_seed(seed)


def begin_call(spec: CheckpointSpec, conditioning: Conditioning, sampling: Sampling) -> int:
    """What every ``generate`` does first: check ``conditioning`` against the model's capabilities again
    (a generator can be called without a ``Studio``, which checks too) and settle the call's seed."""
    require_supported(conditioning, spec.capabilities, spec.name)
    return resolve_seed(sampling)


# Models up to this many weights run on one CPU thread unless the caller chooses otherwise: a step of a
# small model is too short to split across threads, and on a machine where anything else runs, threads
# waiting for each other made the built-in models 10-40x slower (one thread is as fast when idle).
SMALL_MODEL_WEIGHTS = 50_000_000

# The thread count a caller chose for a block (``chosen_threads``): models keep it instead of their own.
_chosen: contextvars.ContextVar[int | None] = contextvars.ContextVar("cadenza_chosen_threads", default=None)


def threads_for(weights: int) -> int | None:
    """A model's own CPU thread choice by its size in weights: 1 for a small model, None (all physical
    cores) for a big one."""
    return 1 if weights <= SMALL_MODEL_WEIGHTS else None


def weight_count(*parts) -> int:
    """The number of weights (parameters) in ``parts``: torch modules, or objects holding them as
    attributes or as ``components`` (a diffusers pipeline), looked into two levels deep. Shared weights
    count once."""
    import torch

    modules: list[torch.nn.Module] = []
    for part in parts:
        if isinstance(part, torch.nn.Module):
            modules.append(part)
            continue
        for value in _held(part):
            if isinstance(value, torch.nn.Module):
                modules.append(value)
            else:
                modules.extend(v for v in _held(value) if isinstance(v, torch.nn.Module))
    seen = {id(p): p.numel() for m in modules for p in m.parameters()}
    return sum(seen.values())


def _held(obj) -> list:
    """What ``obj`` holds: its ``components`` (a diffusers pipeline) and its instance attributes."""
    if isinstance(obj, (type, str, bytes, int, float)) or obj is None:
        return []
    components = getattr(obj, "components", None)
    held = list(components.values()) if isinstance(components, dict) else []
    return held + (list(vars(obj).values()) if hasattr(obj, "__dict__") else [])


@contextlib.contextmanager
def chosen_threads(n: int | None) -> Iterator[None]:
    """Run the block on exactly ``n`` torch intra-op CPU threads, whatever the models would choose (the
    user's ``--threads`` / ``Studio(threads=)``); None leaves the choice to the models. Restored after."""
    if n is None:
        yield
        return
    import torch

    before, token = torch.get_num_threads(), _chosen.set(n)
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        _chosen.reset(token)


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block on at most ``n`` torch intra-op CPU threads (None: the physical cores), never more
    than are set already (a caller's own limit holds), the model's own choice; inside ``chosen_threads``
    the caller's count stands instead. The count is restored afterwards, as torch's setting is
    process-wide. With ``device`` off the CPU the block runs unchanged."""
    import torch

    from cadenza.engine.device import physical_cores

    if _chosen.get() is not None or (device is not None and torch.device(device).type != "cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(min(physical_cores() if n is None else max(1, n), before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Progress:
    """The decode steps of a call's windows (or passes) as one running ``callbacks.progress(done, total)``.

    ``total`` is exact, or with ``estimate`` a guess that grows with the count, so the caller never sees
    a call reported finished while it still runs. ``step`` fits ``DecodeParams.progress``.
    """

    def __init__(self, callbacks: Callbacks, total: int, *, estimate: bool = False) -> None:
        self.callbacks, self.total, self.estimate, self.done = callbacks, total, estimate, 0

    def step(self, _step: int, _total: int) -> None:
        self.done += 1
        if self.callbacks.progress is not None:
            if self.estimate:
                self.total = max(self.total, self.done + 1)
            self.callbacks.progress(self.done, self.total)


def provenance(spec: CheckpointSpec, conditioning: Conditioning, sampling: Sampling, *, seed: int | None,
               sample_index: int, timings_s: dict, notes: dict, call_seed: int | None = None) -> Provenance:
    """How one output of a call was made: the model, the request as given and what the family adds
    (``timings_s`` in seconds, ``notes``).

    ``seed``: this sample's own seed; ``call_seed``: the call's (default ``seed``), written into the
    recorded sampling when it was drawn, so ``sampling`` alone makes the call again. The input files are
    recorded with their sha256 (``inputs``). ``notes["cpu_threads"]`` is torch's thread count while the
    output was made (called from inside the generator's work): on the CPU the last bits of audio can
    depend on it."""
    import torch

    notes = {**notes, "cpu_threads": torch.get_num_threads()}
    if sampling.seed is None:
        sampling = sampling.with_seed(seed if call_seed is None else call_seed)
    return Provenance(model=spec.name, family=spec.family, checkpoint_sha256=spec.sha256,
                      conditioning=conditioning.to_dict(), sampling=sampling.to_dict(), seed=seed,
                      sample_index=sample_index, timings_s=timings_s, notes=notes, inputs=input_files(conditioning))


def input_files(conditioning: Conditioning) -> dict:
    """The files ``conditioning`` names (prompt, melody, source_audio): ``{field: {"path", "sha256"}}``,
    the path made absolute."""
    import hashlib
    import os

    found = {}
    for name in ("prompt", "melody", "source_audio"):
        path = getattr(conditioning, name)
        if path is not None:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            found[name] = {"path": os.path.abspath(path), "sha256": digest}
    return found
