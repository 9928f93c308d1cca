"""Diffusion: our denoise loop vs the diffusers pipeline's ``__call__``; DPM-Solver++ 20 vs DDIM 200.

1. ``loop``: the same pipeline components, scheduler, steps, seed and CFG, run by ``pipe(...)`` and by our
   path (pipeline's encode -> ``engine.denoise`` -> pipeline's decode). Median wall time of a few runs
   each; ``ratio`` = pipeline time / ours (> 1: ours is faster), and the largest sample difference (the
   outputs must agree). For Stable Audio also ``short_request``: a 10 s-of-47 s request, where the pipeline
   denoises its whole window and we denoise only the frames needed. No AudioLDM2 or Stable Audio weights exist on this machine, so the pipelines are
   random ones of reduced size (``cadenza.generators.diffusion.tiny``): the ratio measures loop overhead
   at these sizes, which shrinks relative to model time as models grow.
2. ``quality``: steps vs quality on our default architecture: DPM-Solver++ at 20 steps and DDIM at 20
   steps against DDIM at 200 steps (same seed), as a multi-resolution log-spectrogram L1 distance; the
   distance between two DDIM-200 samples of different seeds gives the scale (what "unrelated" means).
   Uses the installed ``format: cadenza`` diffusion checkpoint when there is one, else a random-weights
   model of the default size (and says so in ``quality.model``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
import torch

PROMPT = "a calm solo piano piece in C major"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean L1 distance of log-magnitude STFTs at FFT sizes 512, 1024, 2048 of ``a, b [C, N]`` (mono mix)."""
    x, y = torch.from_numpy(a.mean(0)), torch.from_numpy(b.mean(0))
    distances = []
    for n_fft in (512, 1024, 2048):
        window = torch.hann_window(n_fft)
        sx = torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        sy = torch.stft(y, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        distances.append(float((torch.log(sx + 1e-5) - torch.log(sy + 1e-5)).abs().mean()))
    return float(np.mean(distances))


def _interleaved_medians(fns: list, repeats: int) -> tuple[list[float], list]:
    """Median wall time of each of ``fns`` over ``repeats`` rounds, run in turn (a, b, a, b, ...) so a load
    change on this shared machine hits all of them alike; also each one's last result."""
    times: list[list[float]] = [[] for _ in fns]
    results: list = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            started = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times], results


def loop_vs_pipeline(quick: bool) -> dict:
    from cadenza.generators.diffusion.audioldm2 import AudioLDM2Backend
    from cadenza.generators.diffusion.sampler import Batch, Settings, sample
    from cadenza.generators.diffusion.schedulers import make_scheduler
    from cadenza.generators.diffusion.stable_audio import StableAudioBackend
    from cadenza.generators.diffusion.tiny import build_audioldm2, build_stable_audio

    steps, repeats = (10, 3) if quick else (25, 5)
    cases = {
        "stable_audio": (lambda: build_stable_audio(layers=4 if quick else 8, heads=4 if quick else 8, head_dim=16 if quick else 32),
                         StableAudioBackend, "dpm++-sde"),
        "audioldm2": (lambda: build_audioldm2(channels=(16, 32) if quick else (32, 64)), AudioLDM2Backend, "dpm++"),
    }
    figures = {}
    for name, (build, backend_class, scheduler_name) in cases.items():
        pipe = build()
        pipe.set_progress_bar_config(disable=True)
        backend = backend_class(pipe)
        duration = backend.max_duration_s if name == "stable_audio" else 1.0  # the pipeline denoises the whole window
        settings = Settings(steps=steps, cfg_scale=4.0, scheduler=scheduler_name, duration_s=duration)

        def ours():
            return sample(backend, Batch([PROMPT], ["low quality"], [[0]]), settings)

        def theirs():
            pipe.scheduler = make_scheduler(scheduler_name, backend.scheduler_kind, backend.scheduler_config)
            g = torch.Generator().manual_seed(0)
            kwargs = ({"audio_end_in_s": duration} if name == "stable_audio" else {"audio_length_in_s": duration})
            out = pipe(PROMPT, negative_prompt="low quality", num_inference_steps=steps, guidance_scale=4.0,
                       generator=g, output_type="pt", **kwargs).audios
            return out if out.ndim == 3 else out[:, None]

        fns = [ours, theirs]
        if name == "stable_audio":  # a 10 s request from a 47 s window: the pipeline denoises the whole window
            short = Settings(steps=steps, cfg_scale=4.0, scheduler=scheduler_name, duration_s=duration * 10 / 47)
            fns.append(lambda: sample(backend, Batch([PROMPT], ["low quality"], [[0]]), short))
        for fn in fns:
            fn()  # warm-up (first-call allocations, lazy imports)
        (t_ours, t_theirs, *t_short), (a, b, *_) = _interleaved_medians(fns, repeats)
        diff = float((a - b.float()).abs().max())
        figures[name] = {"pipeline_s": round(t_theirs, 4), "ours_s": round(t_ours, 4), "ratio": round(t_theirs / t_ours, 3),
                         "max_abs_diff": diff, "steps": steps, "scheduler": scheduler_name, "duration_s": round(duration, 3)}
        if t_short:
            figures[name]["short_request"] = {"duration_s": round(duration * 10 / 47, 3), "ours_s": round(t_short[0], 4),
                                              "pipeline_full_window_s": round(t_theirs, 4),
                                              "ratio": round(t_theirs / t_short[0], 3)}
        log(f"{name}: pipeline {t_theirs:.3f} s, ours {t_ours:.3f} s, ratio {t_theirs / t_ours:.2f}, max diff {diff:.2e}"
            + (f"; 10/47-window request {t_short[0]:.3f} s (ratio {t_theirs / t_short[0]:.2f})" if t_short else ""))
    return figures


def _quality_backend(quick: bool):
    """(backend, description): the installed default checkpoint, else a random model of the default size."""
    from cadenza.generators.diffusion.cadenza_backend import CadenzaBackend, load_cadenza_backend
    from cadenza.generators.diffusion.latent import CodecAutoencoder, LatentStats
    from cadenza.generators.diffusion.model import DiTConfig, LatentDiT
    from cadenza.studio import Studio

    for spec in Studio().specs().values():
        if spec.family == "diffusion" and spec.config.get("format") == "cadenza":
            return load_cadenza_backend(spec), f"checkpoint {spec.name}"
    from cadenza.codec.model import CodecConfig, build_codec
    from cadenza.tokenizers.text import TextEncoder

    torch.manual_seed(0)
    config = DiTConfig(layers=2, heads=2, head_dim=16, cond_dim=32, time_proj_dim=16) if quick else DiTConfig()
    codec = CodecAutoencoder(build_codec(CodecConfig()))
    backend = CadenzaBackend(LatentDiT(config), codec, LatentStats((0.0,) * codec.latent_dim, 1.0), TextEncoder())
    size = "reduced" if quick else "default"
    return backend, f"random weights, {size}-size architecture (no trained diffusion checkpoint installed yet)"


def steps_vs_quality(quick: bool) -> dict:
    from cadenza.generators.diffusion.sampler import Batch, Settings, sample

    backend, description = _quality_backend(quick)
    duration = 2.0 if quick else 8.0
    log(f"quality on {description}, {duration} s")

    def run(scheduler: str, steps: int, seed: int = 0) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        wav = sample(backend, Batch([PROMPT], [None], [[seed]]), Settings(steps, backend.defaults.cfg_scale, scheduler, duration))
        return wav[0].numpy(), time.perf_counter() - started

    reference, t_ref = run("ddim", 200)
    dpm20, t_dpm = run("dpm++", 20)
    ddim20, _ = run("ddim", 20)
    other, _ = run("ddim", 200, seed=1)
    figures = {"model": description, "duration_s": duration,
               "dpmpp20_vs_ddim200": round(spectral_distance(dpm20, reference), 4),
               "ddim20_vs_ddim200": round(spectral_distance(ddim20, reference), 4),
               "other_seed_ddim200": round(spectral_distance(other, reference), 4),
               "dpmpp20_s": round(t_dpm, 2), "ddim200_s": round(t_ref, 2)}
    log(f"quality: {figures}")
    return figures


def main(quick: bool) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)  # timings on a shared machine: one thread is the steadiest
    loop = loop_vs_pipeline(quick)
    quality = steps_vs_quality(quick)
    return {"ratio": min(v["ratio"] for v in loop.values()), "loop": loop, "quality": quality}
