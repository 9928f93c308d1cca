"""What every training recipe shares: the learning-rate schedule and the resumable state file.

``state.pt`` holds only tensors, numbers and plain containers (model and optimizer state dicts, the
step, recipe extras), is written atomically, and is read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch


def warmup_cosine_lr(step: int, *, peak: float, warmup: int, total: int, floor_ratio: float) -> float:
    """Linear warmup over ``warmup`` steps to ``peak``, then a cosine down to ``floor_ratio * peak`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor_ratio + (1 - floor_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def save_state(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
               **extra) -> None:
    """Atomically write model + optimizer state, the step and ``extra`` (numbers/tensors) to ``path``."""
    from cadenza.fileio import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, **extra}, tmp)


def load_state(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict | None:
    """Restore ``model`` (and ``optimizer``) from ``path`` if it exists; returns the whole state or None."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state


def recipe_command(template: str, run_dir: str | os.PathLike, name: str) -> str:
    """A recipe's command line as it really ran: ``template`` with ``{max_steps}`` read from the run's
    ``config.json`` (``train.max_steps``, the schedule's length) and ``{name}`` (the exported model's
    name) filled in. A run whose ``state.pt`` stopped short of ``max_steps`` gets ``--stop-at STEP``
    after ``--max-steps``: the schedule it followed, cut where it was exported."""
    max_steps = int(read_run_config(run_dir)["train"]["max_steps"])
    command = template.format(max_steps=max_steps, name=name)
    state_path = Path(run_dir) / "state.pt"
    if state_path.exists():
        step = int(torch.load(state_path, weights_only=True, mmap=True)["step"])
        if step < max_steps:
            command = command.replace(f"--max-steps {max_steps}", f"--max-steps {max_steps} --stop-at {step}", 1)
    return command


def fine_tune_command(template: str, run_dir: str | os.PathLike, name: str, **fields) -> str | None:
    """The command line of a run started ``--init-from`` a checkpoint: that checkpoint's own recipe (its
    manifest's ``made_by.command``), then ``template`` (``{init_from}``, ``{lr}``, ``{run}`` and ``fields``
    filled in; ``{max_steps}``/``--stop-at`` as `recipe_command`). None for a run trained from scratch.
    Read before an export overwrites that checkpoint (fine-tuning in place keeps one name)."""
    train = read_run_config(run_dir)["train"]
    init_from = train.get("init_from")
    if not init_from:
        return None
    try:
        base = json.loads((Path(init_from) / "manifest.json").read_text())["made_by"]["command"]
    except (OSError, KeyError, json.JSONDecodeError):
        base = f"(the checkpoint {init_from})"
    step = template.replace("{init_from}", str(init_from)).replace("{lr}", f"{train['lr']:g}").replace("{run}", str(run_dir))
    for key, value in fields.items():
        step = step.replace("{" + key + "}", str(value))
    return f"{base} && {recipe_command(step, run_dir, name)}"


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """The ``config.json`` a trainer wrote into its run folder; CheckpointError if there is no run."""
    from cadenza.errors import CheckpointError

    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{run_dir}: no training run here ({path.name} is missing): train first") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc


def require_run(run_dir: str | os.PathLike, recipe: str, *files: str) -> Path:
    """``run_dir`` as a Path once it holds a training run (``config.json``, ``state.pt`` and ``files``), so
    that ``--export`` says in one line what to do instead of failing deep inside the export.

    Raises:
        CheckpointError: the folder or one of the files is missing.
    """
    from cadenza.errors import CheckpointError

    run = Path(run_dir)
    missing = [name for name in ("config.json", "state.pt", *files) if not (run / name).is_file()]
    if missing:
        raise CheckpointError(f"no training run to export in {run} ({', '.join(missing)} missing): train first with "
                              f"`cadenza train {recipe} --run {run}`, then add --export")
    return run
