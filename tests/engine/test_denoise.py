"""The denoise loop against hand-written diffusers loops, with a tiny fake noise predictor."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from diffusers import (  # noqa: E402
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg  # noqa: E402

from cadenza.engine.denoise import denoise  # noqa: E402
from cadenza.errors import Cancelled, InvalidConditioning  # noqa: E402

# diffusers' schedulers call np.array on tensors, which numpy 2 flags; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPE = (2, 4, 8)  # [B, C, T] latents, audio-like


class FakeDenoiser:
    """``(latents [N, C, T], t, cond [N, C]) -> noise [N, C, T]``; records the batch sizes it saw."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(4, 4, generator=g) * 0.3
        self.batches: list[int] = []

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.batches.append(latents.shape[0])
        tt = torch.as_tensor(t, dtype=latents.dtype) / 1000.0
        return torch.tanh(torch.einsum("cd,bdt->bct", self.w, latents) + cond[:, :, None] * (1 + tt))


def conds():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)


def noise(seed=2):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def reference_loop(scheduler, model, latents, steps, cond, uncond=None, cfg=1.0, rescale=0.0):
    """The loop as diffusers' StableDiffusionPipeline writes it."""
    scheduler.set_timesteps(steps)
    latents = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        if uncond is not None:
            x = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            pred_u, pred_c = model(x, t, torch.cat([uncond, cond])).chunk(2)
            pred = pred_u + cfg * (pred_c - pred_u)
            if rescale > 0:
                pred = rescale_noise_cfg(pred, pred_c, guidance_rescale=rescale)
        else:
            pred = model(scheduler.scale_model_input(latents, t), t, cond)
        latents = scheduler.step(pred, t, latents).prev_sample
    return latents


SCHEDULERS = {
    "ddim": lambda: DDIMScheduler(),
    "dpm++": lambda: DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2),
    "euler": lambda: EulerDiscreteScheduler(),
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_matches_hand_written_diffusers_loop(name):
    cond, uncond = conds()
    model = FakeDenoiser()
    got = denoise(model, noise(), SCHEDULERS[name](), 12, cond)
    want = reference_loop(SCHEDULERS[name](), FakeDenoiser(), noise(), 12, cond)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert model.batches == [2] * 12
    assert not got.is_inference()

    model = FakeDenoiser()
    got = denoise(model, noise(), SCHEDULERS[name](), 10, cond, uncond=uncond, cfg_scale=4.0, guidance_rescale=0.7)
    want = reference_loop(SCHEDULERS[name](), FakeDenoiser(), noise(), 10, cond, uncond, cfg=4.0, rescale=0.7)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert model.batches == [4] * 10  # CFG is one batched forward per step


def test_batched_cfg_equals_two_separate_passes():
    cond, uncond = conds()

    def separate(x, t, c):  # proves the [uncond, cond] row order is what the math assumes
        half = x.shape[0] // 2
        return torch.cat([FakeDenoiser()(x[:half], t, c[:half]), FakeDenoiser()(x[half:], t, c[half:])])

    a = denoise(FakeDenoiser(), noise(), DDIMScheduler(), 8, cond, uncond=uncond, cfg_scale=3.0)
    b = denoise(separate, noise(), DDIMScheduler(), 8, cond, uncond=uncond, cfg_scale=3.0)
    torch.testing.assert_close(a, b)
    # cfg_scale 1 skips the unconditional half entirely.
    model = FakeDenoiser()
    c = denoise(model, noise(), DDIMScheduler(), 8, cond, uncond=uncond, cfg_scale=1.0)
    torch.testing.assert_close(c, denoise(FakeDenoiser(), noise(), DDIMScheduler(), 8, cond))
    assert set(model.batches) == {2}


def test_dict_conditioning_is_batched_per_key():
    cond, uncond = conds()
    model = FakeDenoiser()
    fn = lambda x, t, c: model(x, t, c["text"] + c["timing"])  # noqa: E731
    got = denoise(fn, noise(), DDIMScheduler(), 5, {"text": cond, "timing": cond * 0},
                  uncond={"text": uncond, "timing": uncond * 0}, cfg_scale=2.0)
    want = denoise(FakeDenoiser(), noise(), DDIMScheduler(), 5, cond, uncond=uncond, cfg_scale=2.0)
    torch.testing.assert_close(got, want)


def test_strength_starts_from_noised_init_latents():
    cond, _ = conds()
    init = noise(7)
    steps, strength = 10, 0.4
    got = denoise(FakeDenoiser(), init, DDIMScheduler(), steps, cond, strength=strength,
                  rng=torch.Generator().manual_seed(3))

    sched, model = DDIMScheduler(), FakeDenoiser()  # diffusers' img2img recipe, by hand
    sched.set_timesteps(steps)
    t_start = steps - int(steps * strength)
    timesteps = sched.timesteps[t_start:]
    eps = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    latents = sched.add_noise(init, eps, timesteps[:1].repeat(SHAPE[0]))
    for t in timesteps:
        latents = sched.step(model(sched.scale_model_input(latents, t), t, cond), t, latents).prev_sample
    assert len(model.batches) == 4
    torch.testing.assert_close(got, latents, rtol=0, atol=1e-6)
    # Explicit noise (one seed per row) is the same as drawing it from the rng.
    again = denoise(FakeDenoiser(), init, DDIMScheduler(), steps, cond, strength=strength, noise=eps)
    torch.testing.assert_close(again, latents, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        denoise(FakeDenoiser(), init, DDIMScheduler(), steps, cond, strength=strength, noise=eps[:1])


@pytest.mark.parametrize("make", [DDPMScheduler, EulerAncestralDiscreteScheduler])
def test_stochastic_schedulers_follow_rng(make):
    cond, _ = conds()

    def run(seed):
        return denoise(FakeDenoiser(), noise(), make(), 6, cond, rng=torch.Generator().manual_seed(seed))

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_callbacks_validation_and_template_untouched():
    cond, _ = conds()
    template = DPMSolverMultistepScheduler()
    seen = []
    denoise(FakeDenoiser(), noise(), template, 5, cond, progress=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 5) for i in range(1, 6)]
    assert template.num_inference_steps is None  # the caller's scheduler was used as a template only

    polls = iter(range(100))
    with pytest.raises(Cancelled, match="after 2 of 5"):
        denoise(FakeDenoiser(), noise(), DDIMScheduler(), 5, cond, should_cancel=lambda: next(polls) >= 2)
    for bad in (dict(num_steps=0), dict(strength=0.0), dict(strength=1.5), dict(guidance_rescale=2.0)):
        kwargs = dict(num_steps=5) | bad
        with pytest.raises(InvalidConditioning):
            denoise(FakeDenoiser(), noise(), DDIMScheduler(), cond=cond, **kwargs)
