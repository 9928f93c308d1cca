"""Our DPM-Solver++ 2M (`diffusion.dpm_solver`) against diffusers' DPMSolverMultistepScheduler, step by step."""

import pytest
import torch

from cadenza.generators.diffusion.dpm_solver import DPMSolverPlusPlus2M, supports
from cadenza.generators.diffusion.model import scheduler_config
from cadenza.generators.diffusion.schedulers import make_scheduler

diffusers = pytest.importorskip("diffusers")
OVERRIDES = {"algorithm_type": "dpmsolver++", "solver_order": 2}
AUDIOLDM2_LIKE = {"num_train_timesteps": 1000, "beta_start": 0.0015, "beta_end": 0.0195, "beta_schedule": "scaled_linear",
                  "prediction_type": "epsilon", "timestep_spacing": "leading", "steps_offset": 1, "clip_sample": False}


def run(scheduler, steps: int, strength: float = 1.0) -> list[torch.Tensor]:
    """The samples after each step of a fixed pseudo-model, from a fixed start."""
    torch.manual_seed(3)
    sample, noise = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    if strength < 1.0:
        start = steps - int(steps * strength)
        scheduler.set_begin_index(start)
        timesteps = timesteps[start:]
        sample = scheduler.add_noise(sample, noise, timesteps[:1].repeat(2))
    made = []
    for t in timesteps:
        output = torch.tanh(sample * 0.7 + float(t) / 1000)  # any deterministic function of (x, t)
        sample = scheduler.step(output, t, sample).prev_sample
        made.append(sample)
    return made


@pytest.mark.parametrize("config", [scheduler_config(), AUDIOLDM2_LIKE,
                                    {**scheduler_config(), "timestep_spacing": "linspace", "beta_schedule": "linear"}])
@pytest.mark.parametrize("steps,strength", [(25, 1.0), (8, 1.0), (20, 0.6)])
def test_every_step_matches_diffusers(config, steps, strength):
    full = {**config, **OVERRIDES}
    assert supports(full)
    ours = run(DPMSolverPlusPlus2M(full), steps, strength)
    theirs = run(diffusers.DPMSolverMultistepScheduler.from_config(full), steps, strength)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a - b).abs().max()


def test_scheduler_config_is_what_diffusers_writes():
    made = dict(diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                        prediction_type="v_prediction", clip_sample=False,
                                        timestep_spacing="trailing").config)
    assert scheduler_config() == {k: v for k, v in made.items() if not k.startswith("_")}


def test_the_table_uses_ours_only_where_it_computes_the_same():
    assert isinstance(make_scheduler("dpm++", "discrete", scheduler_config()), DPMSolverPlusPlus2M)
    karras = make_scheduler("dpm++-karras", "discrete", scheduler_config())
    assert type(karras).__name__ == "DPMSolverMultistepScheduler"
    assert not supports({**scheduler_config(), "thresholding": True})
    assert not supports({**scheduler_config(), "rescale_betas_zero_snr": True})
    assert not supports({**scheduler_config(), "trained_betas": [0.1] * 1000})
    with pytest.raises(ValueError):
        DPMSolverPlusPlus2M({**scheduler_config(), "use_karras_sigmas": True})
