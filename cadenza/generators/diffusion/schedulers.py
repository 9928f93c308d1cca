"""Scheduler names (``Sampling.scheduler``) -> diffusers schedulers, per kind of noise schedule.

Two kinds of models exist and a scheduler of one kind cannot drive a model of the other:

- ``discrete``: trained on a DDPM beta schedule with integer timesteps 0..999 (AudioLDM2, our own
  small model). Every name below works; each is built with ``from_config`` of the model's own
  scheduler config, so betas, prediction type and timestep count carry over.
- ``sigma``: trained on continuous noise levels with EDM preconditioning (Stable Audio Open: v-prediction,
  the model's time input is ``atan(sigma) * 2 / pi``). DDIM/Heun have no such variant in diffusers;
  ``euler`` and ``dpm++`` use diffusers' EDM schedulers, whose time input (``log(sigma) / 4``) is
  converted back to the model's by ``model_time``.

Unknown names raise InvalidConditioning listing the names the model accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from cadenza.errors import InvalidConditioning

if TYPE_CHECKING:  # torch is imported only to build or drive a scheduler: the names are read without it
    import torch


@dataclass(frozen=True)
class SchedulerChoice:
    """How to build one named scheduler: diffusers class name + config overrides."""

    class_name: str
    overrides: tuple[tuple[str, Any], ...] = ()
    description: str = ""


DISCRETE: dict[str, SchedulerChoice] = {
    "dpm++": SchedulerChoice("DPMSolverMultistepScheduler", (("algorithm_type", "dpmsolver++"), ("solver_order", 2)),
                             "DPM-Solver++ 2M (deterministic; good at 20-25 steps)"),
    "dpm++-karras": SchedulerChoice("DPMSolverMultistepScheduler", (("algorithm_type", "dpmsolver++"), ("solver_order", 2),
                                                                   ("use_karras_sigmas", True)),
                                    "DPM-Solver++ 2M on Karras sigmas"),
    "ddim": SchedulerChoice("DDIMScheduler", (), "DDIM (deterministic; needs ~100-200 steps for best quality)"),
    "euler": SchedulerChoice("EulerDiscreteScheduler", (), "Euler (deterministic)"),
    "euler-a": SchedulerChoice("EulerAncestralDiscreteScheduler", (), "Euler ancestral (stochastic, follows the seed)"),
    "heun": SchedulerChoice("HeunDiscreteScheduler", (), "Heun (2nd order; two model calls per step)"),
}

SIGMA: dict[str, SchedulerChoice] = {
    "dpm++": SchedulerChoice("EDMDPMSolverMultistepScheduler", (("algorithm_type", "dpmsolver++"), ("solver_order", 2)),
                             "DPM-Solver++ 2M over the model's sigmas (deterministic)"),
    "dpm++-sde": SchedulerChoice("CosineDPMSolverMultistepScheduler", (),
                                 "Stable Audio Open's own DPM-Solver++ 2M SDE (stochastic, follows the seed)"),
    "euler": SchedulerChoice("EDMEulerScheduler", (), "Euler over the model's sigmas (deterministic)"),
}

KINDS: dict[str, dict[str, SchedulerChoice]] = {"discrete": DISCRETE, "sigma": SIGMA}
# Config keys a sigma-kind scheduler takes from the model's own scheduler config.
_SIGMA_KEYS = ("sigma_min", "sigma_max", "sigma_data", "sigma_schedule", "prediction_type", "num_train_timesteps", "rho")


def scheduler_names(kind: str | None = None) -> tuple[str, ...]:
    """The valid ``Sampling.scheduler`` names for a model of ``kind`` ('discrete' or 'sigma'); without
    a kind, every name of any kind (what the app offers; a model checks its own kind)."""
    if kind is None:
        return tuple(dict.fromkeys(name for table in KINDS.values() for name in table))
    return tuple(KINDS[kind])


def check_scheduler_name(name: str, kind: str) -> str:
    """``name`` normalised (case, spaces), or InvalidConditioning listing the valid names."""
    normal = name.strip().lower().replace(" ", "").replace("_", "-")
    aliases = {"dpmsolver++": "dpm++", "dpm-solver++": "dpm++", "dpmpp": "dpm++", "dpmpp-2m": "dpm++",
               "euler-ancestral": "euler-a", "dpmpp-sde": "dpm++-sde"}
    normal = aliases.get(normal, normal)
    if normal not in KINDS[kind]:
        raise InvalidConditioning(f"unknown scheduler {name!r} for this model; choose one of: "
                                  + ", ".join(f"{k} ({v.description})" for k, v in KINDS[kind].items()))
    return normal


def make_scheduler(name: str, kind: str, base_config: dict) -> Any:
    """A fresh scheduler named ``name`` configured from the model's ``base_config``: diffusers' class, or
    for DPM-Solver++ 2M on a discrete schedule our own equal (`dpm_solver`: no diffusers import)."""
    choice = KINDS[kind][check_scheduler_name(name, kind)]
    if kind == "discrete" and choice.class_name == "DPMSolverMultistepScheduler":
        from cadenza.generators.diffusion.dpm_solver import DPMSolverPlusPlus2M, supports

        native = {**dict(base_config), **dict(choice.overrides)}
        if supports(native):
            return DPMSolverPlusPlus2M(native)
    import diffusers

    cls = getattr(diffusers, choice.class_name)
    config = {k: v for k, v in dict(base_config).items() if kind == "discrete" or k in _SIGMA_KEYS}
    if kind == "sigma" and choice.class_name == "EDMEulerScheduler" and config.get("prediction_type") == "sample":
        raise InvalidConditioning("euler does not support a model predicting the clean sample; use dpm++")
    config.update(dict(choice.overrides))
    return cls.from_config(config)


def model_time(scheduler: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Map a timestep of ``scheduler`` to the time input a sigma-kind (Stable Audio) model was trained with.

    Cosine DPM already yields ``atan(sigma) * 2 / pi``; diffusers' EDM schedulers yield ``log(sigma) / 4``.
    """
    import torch

    if type(scheduler).__name__.startswith("EDM"):
        return lambda t: torch.atan(torch.exp(4.0 * t.float())) * (2.0 / math.pi)
    return lambda t: t
