"""DPM-Solver++ (2M, midpoint) over a discrete DDPM schedule, in plain torch: the default sampler of the
discrete-kind models (our small model, AudioLDM2), without importing diffusers.

It computes what diffusers' ``DPMSolverMultistepScheduler`` computes for the configs it accepts (a test
compares every step): betas from the schedule (linear, scaled_linear, squaredcos_cap_v2), timesteps by
``timestep_spacing``, ``sigma = sqrt((1 - alpha_bar) / alpha_bar)`` interpolated at them and 0 appended,
the model output turned into the clean-sample estimate (epsilon, v or sample prediction), then a
first-order step at the start and the end (``final_sigmas_type`` zero) and second-order multistep
updates between. Importing diffusers' scheduler costs a cold start about a second (its scipy.stats).

`supports(config)` says whether a config stays within that; the scheduler table falls back to diffusers'
class for anything else (Karras sigmas, thresholding, zero-terminal-SNR rescaling, learned variance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = ("epsilon", "v_prediction", "sample")
SPACINGS = ("linspace", "leading", "trailing")
#: config keys that change the result and are only supported at these values
_FIXED = {"trained_betas": None, "thresholding": False, "rescale_betas_zero_snr": False, "variance_type": None,
          "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
          "use_lu_lambdas": False, "use_flow_sigmas": False, "final_sigmas_type": "zero", "euler_at_final": False,
          "algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint",
          "lambda_min_clipped": -math.inf, "use_dynamic_shifting": False}
_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
             "prediction_type": "epsilon", "timestep_spacing": "linspace", "steps_offset": 0, "lower_order_final": True}


def supports(config: dict[str, Any]) -> bool:
    """Whether ``config`` (a DDPM-style scheduler config plus DPM-Solver overrides) is one this solver
    computes exactly; otherwise use diffusers' ``DPMSolverMultistepScheduler``."""
    merged = {**_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    for key, value in _FIXED.items():
        got = merged.get(key, value)
        if key == "variance_type" and got in ("fixed_small", "fixed_large"):
            got = None  # a DDPM config's own variance choice, which DPM-Solver ignores (only "learned" matters)
        if got != value:
            return False
    return (merged["beta_schedule"] in BETA_SCHEDULES and merged["prediction_type"] in PREDICTIONS
            and merged["timestep_spacing"] in SPACINGS)


def _betas(config: dict[str, Any]) -> torch.Tensor:
    n, schedule = config["num_train_timesteps"], config["beta_schedule"]
    if schedule == "linear":
        return torch.linspace(config["beta_start"], config["beta_end"], n, dtype=torch.float32)
    if schedule == "scaled_linear":
        return torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, n, dtype=torch.float32) ** 2

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)],
                        dtype=torch.float32)


class SchedulerConfig(dict):
    """A config read as a dict or by attribute (``config.prediction_type``), as diffusers' configs are."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class StepOutput:
    prev_sample: torch.Tensor


class DPMSolverPlusPlus2M:
    """The scheduler contract `cadenza.engine.denoise` drives (``set_timesteps``, ``timesteps``, ``step``,
    ``add_noise``, ``set_begin_index``, ``from_config``); deterministic (no ``generator``)."""

    order = 1
    init_noise_sigma = 1.0

    def __init__(self, config: dict[str, Any]) -> None:
        if not supports(config):
            raise ValueError("this scheduler config needs diffusers' DPMSolverMultistepScheduler")
        self.config = SchedulerConfig({**_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}})
        alphas_cumprod = torch.cumprod(1.0 - _betas(self.config), dim=0)
        self._train_sigmas = np.array(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5)
        self.timesteps = torch.empty(0, dtype=torch.int64)
        self.sigmas = torch.empty(0)
        self._outputs: list[torch.Tensor] = []
        self._index: int | None = None
        self._begin: int | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DPMSolverPlusPlus2M:
        return cls(dict(config))

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """``num_inference_steps`` timesteps from noisy to clean, spaced by ``timestep_spacing``."""
        n_train, steps = self.config["num_train_timesteps"], num_inference_steps
        spacing = self.config["timestep_spacing"]
        if spacing == "linspace":
            timesteps = np.linspace(0, n_train - 1, steps + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif spacing == "leading":
            ratio = n_train // (steps + 1)
            timesteps = (np.arange(0, steps + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64)
            timesteps += self.config["steps_offset"]
        else:
            timesteps = np.arange(n_train, 0, -n_train / steps).round().copy().astype(np.int64) - 1
        sigmas = np.interp(timesteps, np.arange(0, len(self._train_sigmas)), self._train_sigmas)
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(timesteps).to(device=device, dtype=torch.int64)
        self._outputs, self._index, self._begin = [], None, None

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin = begin_index

    def scale_model_input(self, sample: torch.Tensor, *args: Any) -> torch.Tensor:
        return sample

    @staticmethod
    def _alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = 1 / ((sigma ** 2 + 1) ** 0.5)
        return alpha, sigma * alpha

    def _index_of(self, timestep: torch.Tensor | int) -> int:
        matches = (self.timesteps == torch.as_tensor(timestep).to(self.timesteps.device)).nonzero()
        if len(matches) == 0:
            raise ValueError(f"timestep {timestep} is not one of this schedule's")
        return int(matches[1 if len(matches) > 1 else 0])

    def _clean_estimate(self, output: torch.Tensor, sample: torch.Tensor, index: int) -> torch.Tensor:
        kind = self.config["prediction_type"]
        if kind == "sample":
            return output
        alpha, sigma = self._alpha_sigma(self.sigmas[index])
        if kind == "epsilon":
            return (sample - sigma * output) / alpha
        return alpha * sample - sigma * output

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor | int, sample: torch.Tensor) -> StepOutput:
        """One solver step: ``sample [B, ...]`` at ``timestep`` -> ``prev_sample`` at the next timestep."""
        if len(self.timesteps) == 0:
            raise ValueError("call set_timesteps first")
        if self._index is None:
            self._index = self._begin if self._begin is not None else self._index_of(timestep)
        i = self._index
        clean = self._clean_estimate(model_output, sample, i)
        self._outputs = (self._outputs + [clean])[-2:]
        sample = sample.to(torch.float32)
        alpha_t, sigma_t = self._alpha_sigma(self.sigmas[i + 1])
        alpha_s0, sigma_s0 = self._alpha_sigma(self.sigmas[i])
        lambda_t = torch.log(alpha_t) - torch.log(sigma_t)
        lambda_s0 = torch.log(alpha_s0) - torch.log(sigma_s0)
        h = lambda_t - lambda_s0
        last = i == len(self.timesteps) - 1  # final sigma 0: the last step is first order
        if len(self._outputs) < 2 or last:
            prev = (sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * clean
        else:
            alpha_s1, sigma_s1 = self._alpha_sigma(self.sigmas[i - 1])
            lambda_s1 = torch.log(alpha_s1) - torch.log(sigma_s1)
            m0, m1 = self._outputs[-1], self._outputs[-2]
            r0 = (lambda_s0 - lambda_s1) / h
            d0, d1 = m0, (1.0 / r0) * (m0 - m1)
            prev = ((sigma_t / sigma_s0) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * d0
                    - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * d1)
        self._index += 1
        return StepOutput(prev.to(model_output.dtype))

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``original [B, ...]`` noised to ``timesteps [B]`` (each one of this schedule's)."""
        sigmas = self.sigmas.to(device=original.device, dtype=original.dtype)
        if self._begin is not None:
            indices = [self._begin] * timesteps.shape[0]
        else:
            indices = [self._index_of(t) for t in timesteps]
        sigma = sigmas[indices].flatten()
        while sigma.dim() < original.dim():
            sigma = sigma.unsqueeze(-1)
        alpha, sigma = self._alpha_sigma(sigma)
        return alpha * original + sigma * noise
