"""The one denoising loop, over any diffusers scheduler.

A scheduler is a tiny contract (``set_timesteps``, ``timesteps``, ``scale_model_input``,
``step(...).prev_sample``, ``init_noise_sigma``, and ``add_noise`` for a partial start), so our own
latent diffusion model and the components of diffusers pipelines share this loop. Classifier-free
guidance runs as one batched forward, in diffusers' row order (unconditional rows first).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable

import torch

from cadenza.engine.device import inference
from cadenza.errors import Cancelled, InvalidConditioning

#: ``model_fn(latents [N, ...], t, cond) -> noise_pred [N, ...]`` (or whatever the scheduler's
#: ``prediction_type`` says the model predicts: epsilon, v, sample).
ModelFn = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


def rescale_guidance(guided: torch.Tensor, cond_pred: torch.Tensor, rescale: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2023, sec. 3.4, as diffusers' ``rescale_noise_cfg``): match the
    per-sample std of ``guided [B, ...]`` to ``cond_pred [B, ...]`` by a fraction ``rescale``."""
    dims = list(range(1, cond_pred.ndim))
    std_cond = cond_pred.std(dim=dims, keepdim=True)
    std_guided = guided.std(dim=dims, keepdim=True)
    return rescale * (guided * (std_cond / std_guided)) + (1 - rescale) * guided


def batch_conditions(uncond: Any, cond: Any) -> Any:
    """Concatenate two conditionings along the batch: tensors, dicts / tuples / lists of them, or None."""
    if uncond is None and cond is None:
        return None
    if isinstance(cond, torch.Tensor):
        return torch.cat([uncond, cond])
    if isinstance(cond, Mapping):
        if set(cond) != set(uncond):
            raise ValueError(f"cond and uncond have different keys: {sorted(cond)} vs {sorted(uncond)}")
        return {key: batch_conditions(uncond[key], cond[key]) for key in cond}
    if isinstance(cond, (tuple, list)):
        return type(cond)(batch_conditions(u, c) for u, c in zip(uncond, cond, strict=True))
    raise TypeError(f"cannot batch a conditioning of type {type(cond).__name__} for CFG")


def fresh_scheduler(scheduler: Any) -> Any:
    """A new scheduler with ``scheduler``'s config, so concurrent calls never share step state."""
    if hasattr(scheduler, "from_config") and hasattr(scheduler, "config"):
        return type(scheduler).from_config(scheduler.config)
    return scheduler


def _accepts(fn: Callable, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def start_timesteps(scheduler: Any, num_steps: int, strength: float) -> torch.Tensor:
    """The timesteps to run for ``strength`` (1: all of them; 0.3: the last 30 %), as diffusers' img2img.

    ``set_timesteps`` must have been called; tells a multistep scheduler where it begins.
    """
    init = min(int(num_steps * strength), num_steps)
    t_start = max(num_steps - init, 0)
    order = getattr(scheduler, "order", 1)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * order)
    return scheduler.timesteps[t_start * order :]


@inference
def denoise(
    model_fn: ModelFn,
    latents: torch.Tensor,
    scheduler: Any,
    num_steps: int,
    cond: Any,
    uncond: Any = None,
    cfg_scale: float = 1.0,
    guidance_rescale: float = 0.0,
    rng: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    strength: float = 1.0,
    step_kwargs: Mapping[str, Any] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``scheduler`` for ``num_steps`` and return the denoised latents ``[B, ...]``.

    - ``strength == 1``: ``latents [B, ...]`` is unit Gaussian noise (draw it with ``rng``); it is
      scaled by ``init_noise_sigma`` and every timestep runs.
    - ``strength < 1``: ``latents`` is a clean init latent; ``noise`` (same shape; default: drawn from
      ``rng``) is added at the starting timestep and only the last ``strength`` fraction of steps runs
      (img2img style). Passing ``noise`` lets each row come from its own seed.
    - CFG when ``uncond`` is given and ``cfg_scale != 1``: one ``[2B, ...]`` forward with rows
      ``[uncond, cond]``, combined as ``uncond + cfg_scale * (cond - uncond)``, then optionally
      ``guidance_rescale`` (0 is off).
    - ``rng`` also feeds stochastic schedulers (DDPM, ancestral, DDIM with eta > 0) through ``step``.
    - ``progress(step, total)`` after each step; ``should_cancel()`` polled before each step raises
      ``Cancelled``. ``step_kwargs`` go to ``scheduler.step`` (for example ``eta``).

    ``scheduler`` is used as a template (see ``fresh_scheduler``); its own state is not changed.
    """
    if num_steps < 1:
        raise InvalidConditioning(f"num_steps must be at least 1, got {num_steps}")
    if not 0.0 < strength <= 1.0:
        raise InvalidConditioning(f"strength must be in (0, 1], got {strength}")
    if not 0.0 <= guidance_rescale <= 1.0:
        raise InvalidConditioning(f"guidance_rescale must be in [0, 1], got {guidance_rescale}")
    use_cfg = uncond is not None and cfg_scale != 1.0
    device = latents.device
    scheduler = fresh_scheduler(scheduler)
    if _accepts(scheduler.set_timesteps, "device"):
        scheduler.set_timesteps(num_steps, device=device)
    else:
        scheduler.set_timesteps(num_steps)

    if strength < 1.0:
        timesteps = start_timesteps(scheduler, num_steps, strength)
        if len(timesteps) == 0:
            raise InvalidConditioning(f"strength {strength} leaves no step out of {num_steps}; raise either")
        if noise is None:
            noise = torch.randn(latents.shape, generator=rng, dtype=latents.dtype,
                                device=rng.device if rng is not None else device).to(device)
        elif noise.shape != latents.shape:
            raise ValueError(f"noise {tuple(noise.shape)} must have the init latents' shape {tuple(latents.shape)}")
        latents = scheduler.add_noise(latents, noise, timesteps[:1].repeat(latents.shape[0]))
    else:
        timesteps = scheduler.timesteps
        latents = latents * scheduler.init_noise_sigma

    kwargs = dict(step_kwargs or {})
    if rng is not None and _accepts(scheduler.step, "generator"):
        kwargs.setdefault("generator", rng)
    batched_cond = batch_conditions(uncond, cond) if use_cfg else cond
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"denoising cancelled after {i} of {total} steps")
        x = torch.cat([latents, latents]) if use_cfg else latents
        x = scheduler.scale_model_input(x, t)
        pred = model_fn(x, t, batched_cond)
        if use_cfg:
            pred_uncond, pred_cond = pred.chunk(2)
            pred = pred_uncond + cfg_scale * (pred_cond - pred_uncond)
            if guidance_rescale > 0.0:
                pred = rescale_guidance(pred, pred_cond, guidance_rescale)
        latents = scheduler.step(pred, t, latents, **kwargs).prev_sample
        if progress is not None:
            progress(i + 1, total)
    return latents
