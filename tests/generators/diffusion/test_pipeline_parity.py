"""Our path (pipeline's encode -> engine.denoise -> pipeline's decode) equals the pipeline's own __call__."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadenza.generators.diffusion.sampler import Batch, Settings, sample
from cadenza.generators.diffusion.schedulers import make_scheduler

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def backend_of(name, loaded):
    from cadenza.generators.diffusion.audioldm2 import AudioLDM2Backend
    from cadenza.generators.diffusion.stable_audio import StableAudioBackend

    return (AudioLDM2Backend if name == "audioldm2" else StableAudioBackend)(loaded[name])


def pipeline_call(pipe, name, prompt, negative, duration, steps, cfg, seed, scheduler):
    pipe.scheduler = scheduler
    g = torch.Generator().manual_seed(seed)
    if name == "audioldm2":
        out = pipe(prompt, audio_length_in_s=duration, num_inference_steps=steps, guidance_scale=cfg,
                   negative_prompt=negative, generator=g, output_type="pt").audios
        return out[:, None, :]
    return pipe(prompt, audio_end_in_s=duration, num_inference_steps=steps, guidance_scale=cfg,
                negative_prompt=negative, generator=g, output_type="pt").audios


# Stable Audio's parity runs on its own (Cosine) scheduler: with diffusers' EDM schedulers the pipeline feeds
# the DiT log(sigma) / 4, not the atan(sigma) time it was trained on, and our loop feeds the latter.
@pytest.mark.parametrize("name,scheduler", [("audioldm2", "dpm++"), ("audioldm2", "ddim"), ("stable_audio", "dpm++-sde")])
@pytest.mark.parametrize("negative,cfg", [(None, 3.0), ("low quality, noisy", 4.0), (None, 1.0)])
def test_our_loop_equals_pipeline_call(loaded, name, scheduler, negative, cfg):
    backend = backend_of(name, loaded)
    duration = 0.2 if name == "audioldm2" else backend.max_duration_s  # the pipeline always denoises the full window
    settings = Settings(steps=4, cfg_scale=cfg, scheduler=scheduler, duration_s=duration)
    ours = sample(backend, Batch(["a calm solo piano piece"], [negative], [[7]]), settings)
    template = make_scheduler(scheduler, backend.scheduler_kind, backend.scheduler_config)
    theirs = pipeline_call(loaded[name], name, "a calm solo piano piece", negative, duration, 4, cfg, 7, template)
    assert ours.shape == theirs.shape == (1, backend.channels, int(duration * backend.sample_rate))
    assert float(ours.abs().max()) > 0
    np.testing.assert_allclose(ours.numpy(), theirs.float().numpy(), rtol=1e-4, atol=1e-5)


def test_edm_schedulers_feed_the_model_its_training_time():
    from cadenza.generators.diffusion.schedulers import model_time

    scheduler = make_scheduler("euler", "sigma", {"sigma_min": 0.3, "sigma_max": 500.0, "sigma_data": 1.0,
                                                  "prediction_type": "v_prediction", "sigma_schedule": "exponential"})
    scheduler.set_timesteps(5)
    got = model_time(scheduler)(scheduler.timesteps)
    want = torch.atan(scheduler.sigmas[:-1]) * 2 / torch.pi
    torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-5)
