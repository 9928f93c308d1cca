"""Training of our small latent diffusion model: cache latents + text once, then seeded, resumable steps.

``<run>/cache/<split>.pt``: codec latents ``[N, D, F]`` (float16), MiniLM states ``[N, S, 384]`` (float16),
masks, pooled vectors, and the latent statistics (``stats.json``). ``<run>/state.pt``: model, EMA, optimiser,
step. ``<run>/log.jsonl``: train loss every 10 steps, validation loss every ``eval_every``.

Each step draws its batch, crop length (``min_seconds`` .. clip length, so the timing embedding sees every
duration), offsets, timesteps, noise and condition dropout from a generator seeded by ``(seed, step)``:
a resumed run takes exactly the steps an uninterrupted one would.

Scores: the cache also holds the notes each clip was rendered from (``notes [M, 3]``, ``note_index [N + 1]``);
a model with ``score_dim`` reads each crop's frame-aligned score, dropped per row with ``score_dropout``
(the text-only path) besides the joint ``cond_dropout`` (text and score: the unconditional half of CFG).
``init_from``: start from an exported text-only checkpoint (`widen_for_score`: identical at step 0).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from cadenza.data.splits import SPLITS
from cadenza.generators.diffusion.latent import LatentStats
from cadenza.generators.diffusion.model import NUM_TRAIN_TIMESTEPS, DiTConfig, LatentDiT, scheduler_config, widen_for_score


@dataclass(frozen=True)
class DiffusionTrainConfig:
    data_dir: str = "data/audio"
    codec_dir: str = ""
    run_dir: str = "runs/diffusion"
    max_steps: int = 4000
    minutes: float | None = None
    batch: int = 16
    lr: float = 4e-4
    warmup: int = 300
    min_seconds: float = 2.0
    cond_dropout: float = 0.1
    score_dropout: float = 0.3
    init_from: str | None = None  # an exported checkpoint folder whose model.safetensors starts the run
    ema: float = 0.999
    seed: int = 0
    eval_every: int = 500
    save_every_s: float = 120.0
    threads: int = 2
    max_val_clips: int = 48
    stop_at: int | None = None  # stop (saved, resumable) at this step; the schedule still runs to max_steps
    # Focus the steps on low noise: FOCUS_SHARE of the crops draw their timestep below focus_t of the schedule
    # (where a sketch's performance runs: strength S starts at about S), the rest from the whole range.
    focus_t: float | None = None
    model: DiTConfig = field(default_factory=DiTConfig)

    def __post_init__(self) -> None:
        if self.focus_t is not None and not 0.0 < self.focus_t <= 1.0:
            raise ValueError(f"focus_t must lie in (0, 1], got {self.focus_t}")

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}


FOCUS_SHARE = 0.75  # with ``focus_t``: the share of crops whose timestep is drawn below it


# ---- cache ---------------------------------------------------------------------------------------
def prepare_cache(config: DiffusionTrainConfig, autoencoder=None, text_encoder=None, batch: int = 16) -> Path:
    """Encode every clip with the codec and every caption with MiniLM once (skipped when present)."""
    from cadenza.data.audio_corpus import clip_notes, load_clip, read_clips, score_path_of

    cache = Path(config.run_dir) / "cache"
    if (cache / "stats.json").is_file():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    autoencoder = autoencoder or _load_autoencoder(config.codec_dir)
    if text_encoder is None:
        from cadenza.tokenizers.text import TextEncoder

        text_encoder = TextEncoder()
    train_latents = None
    scored = all((Path(config.data_dir) / score_path_of(r.path)).is_file() for r in read_clips(config.data_dir))
    if not scored:
        print(f"{config.data_dir}: some clips have no score (.mid beside the audio): caching text only",
              file=sys.stderr)
    for split in SPLITS:
        records = read_clips(config.data_dir, split)
        if not records:
            continue
        if any(r.sample_rate != autoencoder.sample_rate for r in records):
            raise ValueError(f"clips must be at the codec's {autoencoder.sample_rate} Hz")
        latents, states, masks, pooled = [], [], [], []
        for start in range(0, len(records), batch):
            chunk = records[start:start + batch]
            wavs = [torch.from_numpy(load_clip(config.data_dir, r)) for r in chunk]
            length = min(w.shape[-1] for w in wavs)
            latents.append(autoencoder.encode(torch.stack([w[:, :length] for w in wavs])).to(torch.float16))
            emb = text_encoder([r.caption for r in chunk])
            states.append(emb.states.to(torch.float16))
            masks.append(emb.mask)
            pooled.append(emb.pooled)
            print(f"\rcaching {split}: {start + len(chunk)}/{len(records)} clips", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        frames = min(x.shape[-1] for x in latents)
        width = max(s.shape[1] for s in states)
        data = {"latents": torch.cat([x[..., :frames] for x in latents]),
                "states": torch.cat([torch.nn.functional.pad(s, (0, 0, 0, width - s.shape[1])) for s in states]),
                "mask": torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1])) for m in masks]),
                "pooled": torch.cat(pooled)}
        if scored:
            notes = [torch.from_numpy(clip_notes(config.data_dir, r)).float() for r in records]
            data["notes"] = torch.cat(notes).reshape(-1, 3)
            data["note_index"] = torch.tensor([0] + [len(n) for n in notes]).cumsum(0)
        torch.save(data, cache / f"{split}.pt")
        if split == "train":
            train_latents = data["latents"]
    if train_latents is None:
        raise ValueError(f"{config.data_dir}: no training clips")
    stats = LatentStats.measure(train_latents)
    info = {**stats.to_dict(), "frame_rate": autoencoder.frame_rate, "latent_dim": autoencoder.latent_dim,
            "sample_rate": autoencoder.sample_rate}
    (cache / "stats.json").write_text(json.dumps(info))
    return cache


def _load_autoencoder(codec_dir: str):
    from cadenza.codec.export import load_codec_dir
    from cadenza.generators.diffusion.latent import CodecAutoencoder

    if not codec_dir:
        raise ValueError("--codec DIR (an exported codec: codec.safetensors + codec.json) is needed to cache latents")
    return CodecAutoencoder(load_codec_dir(codec_dir))


def load_split(cache: Path, split: str) -> dict | None:
    path = cache / f"{split}.pt"
    return torch.load(path, weights_only=True) if path.is_file() else None


def read_stats(cache: Path) -> tuple[LatentStats, dict]:
    info = json.loads((cache / "stats.json").read_text())
    return LatentStats(tuple(info["mean"]), float(info["std"])), info


# ---- training ------------------------------------------------------------------------------------
def crop_scores(data: dict, index: torch.Tensor, frames: int, offsets: torch.Tensor, frame_rate: float,
                drop: torch.Tensor) -> torch.Tensor:
    """``[B, frames, SCORE_DIM]`` scores of the crops (zero rows where ``drop``)."""
    import numpy as np

    from cadenza.music.score_roll import crop_roll, empty_roll

    if "notes" not in data:
        raise ValueError("this diffusion cache holds no scores: delete <run>/cache and run again to rebuild it")
    rolls = []
    for row, offset, dropped in zip(index.tolist(), offsets.tolist(), drop.tolist()):
        notes = data["notes"][data["note_index"][row]:data["note_index"][row + 1]].double().numpy()
        rolls.append(empty_roll(frames) if dropped else crop_roll(notes, offset / frame_rate, frames, frame_rate))
    return torch.from_numpy(np.stack(rolls))


def diffusion_loss(model: LatentDiT, data: dict, index: torch.Tensor, frames: int, offsets: torch.Tensor,
                   t: torch.Tensor, noise: torch.Tensor, drop: torch.Tensor, stats: LatentStats, frame_rate: float,
                   noise_schedule, drop_score: torch.Tensor | None = None) -> torch.Tensor:
    """v-prediction MSE on crops ``[offset, offset + frames)`` of clips ``index``; ``drop`` rows get the null
    text (and no score); ``drop_score`` rows no score (models that read one)."""
    clips = data["latents"][index].float()
    x0 = torch.stack([c[:, o:o + frames] for c, o in zip(clips, offsets.tolist())])
    x0 = stats.normalize(x0)
    keep = (~drop).float()
    seconds = torch.full((len(index),), frames / frame_rate)
    cond = model.conditions(data["states"][index].float() * keep[:, None, None], data["mask"][index],
                            data["pooled"][index].float() * keep[:, None], seconds)
    if model.config.score_dim:
        no_score = drop if drop_score is None else drop | drop_score
        cond["score"] = crop_scores(data, index, frames, offsets, frame_rate, no_score)
    xt = noise_schedule.add_noise(x0, noise, t)
    target = noise_schedule.get_velocity(x0, noise, t)
    pred = model(xt, t.float() / NUM_TRAIN_TIMESTEPS, cond)
    return torch.nn.functional.mse_loss(pred, target)


def step_draws(config: DiffusionTrainConfig, step: int, n_clips: int, clip_frames: int, latent_dim: int,
               frame_rate: float) -> dict:
    """Everything random about one step, from a generator seeded by (seed, step)."""
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    min_frames = min(clip_frames, max(1, math.ceil(config.min_seconds * frame_rate)))
    frames = int(torch.randint(min_frames, clip_frames + 1, (1,), generator=g))
    b = config.batch
    draws = {"index": torch.randint(0, n_clips, (b,), generator=g), "frames": frames,
             "offsets": torch.randint(0, clip_frames - frames + 1, (b,), generator=g),
             "t": torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), generator=g),
             "noise": torch.randn(b, latent_dim, frames, generator=g),
             "drop": torch.rand(b, generator=g) < config.cond_dropout,
             "drop_score": torch.rand(b, generator=g) < config.score_dropout}
    if config.focus_t is not None:  # drawn last, so a run without it takes the same steps as before
        low = torch.randint(0, max(1, int(config.focus_t * NUM_TRAIN_TIMESTEPS)), (b,), generator=g)
        draws["t"] = torch.where(torch.rand(b, generator=g) < FOCUS_SHARE, low, draws["t"])
    return draws


@torch.no_grad()
def validation_loss(model: LatentDiT, data: dict, stats: LatentStats, frame_rate: float, noise_schedule,
                    max_clips: int, with_score: bool = True, t_top: float = 1.0) -> float:
    """Mean loss over full clips at 8 fixed timesteps with fixed noise (comparable across runs); with the
    score when the model reads one and ``with_score`` (else its text-only path). ``t_top < 1``: the 8
    timesteps spread over the lowest ``t_top`` of the schedule instead (a focused run's range)."""
    n = min(max_clips, data["latents"].shape[0])
    frames = data["latents"].shape[-1]
    g = torch.Generator().manual_seed(1234)
    losses = []
    for t_value in torch.linspace(50, t_top * NUM_TRAIN_TIMESTEPS - 50, 8).long():
        for start in range(0, n, 16):
            index = torch.arange(start, min(n, start + 16))
            noise = torch.randn(len(index), data["latents"].shape[1], frames, generator=g)
            losses.append(float(diffusion_loss(model, data, index, frames, torch.zeros(len(index), dtype=torch.long),
                                               t_value.repeat(len(index)), noise, torch.zeros(len(index), dtype=torch.bool),
                                               stats, frame_rate, noise_schedule,
                                               torch.full((len(index),), not with_score))) * len(index))
    return sum(losses) / (8 * n)


def train(config: DiffusionTrainConfig, autoencoder=None, text_encoder=None) -> dict:
    """Train (or resume) until ``max_steps`` or ``minutes``; returns the last logged figures."""
    from diffusers import DDPMScheduler

    torch.set_num_threads(config.threads)
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    cache = prepare_cache(config, autoencoder, text_encoder)
    stats, info = read_stats(cache)
    train_data, val_data = load_split(cache, "train"), load_split(cache, "validation")
    frame_rate = float(info["frame_rate"])
    clip_frames = int(train_data["latents"].shape[-1])
    # The latent width comes from the codec; the timing range (and so the longest duration the model
    # offers) from the clips it actually saw.
    from cadenza.music.score_roll import SCORE_DIM

    model_config = replace(config.model, latent_dim=int(info["latent_dim"]),
                           max_seconds=float(math.ceil(clip_frames / frame_rate)),
                           score_dim=SCORE_DIM if "notes" in train_data else None)
    (run / "config.json").write_text(json.dumps({"train": config.to_dict(), "model": model_config.to_dict(),
                                                 "latent": {**stats.to_dict(), "frame_rate": frame_rate}}, indent=1))
    torch.manual_seed(config.seed)
    model = LatentDiT(model_config)
    if config.init_from:
        from safetensors.torch import load_file

        widen_for_score(model, load_file(str(Path(config.init_from) / "model.safetensors")))
    ema = LatentDiT(model_config)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    step = 0
    state_path = run / "state.pt"
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        print(f"resuming at step {step}", file=sys.stderr)
    noise_schedule = DDPMScheduler.from_config(scheduler_config())
    n_clips, latent_dim, clip_frames = train_data["latents"].shape
    started = last_save = time.monotonic()
    log = open(run / "log.jsonl", "a")
    figures: dict = {}

    def save() -> None:
        from cadenza.fileio import atomic_path

        with atomic_path(state_path) as tmp:
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                        "step": step}, tmp)

    model.train()
    while step < min(config.max_steps, config.stop_at or config.max_steps):
        if config.minutes is not None and time.monotonic() - started > config.minutes * 60:
            break
        draws = step_draws(config, step, n_clips, clip_frames, latent_dim, frame_rate)
        lr = config.lr * min(1.0, (step + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * step / config.max_steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = diffusion_loss(model, train_data, draws["index"], draws["frames"], draws["offsets"], draws["t"],
                              draws["noise"], draws["drop"], stats, frame_rate, noise_schedule, draws["drop_score"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        decay = min(config.ema, (1 + step) / (10 + step))  # EMA warm-up: early averages follow the model closely
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - decay)
        step += 1
        if step % 10 == 0 or step == config.max_steps:
            figures = {"step": step, "loss": round(loss.item(), 5), "lr": lr,
                       "seconds": round(time.monotonic() - started, 1)}
            log.write(json.dumps(figures) + "\n")
            log.flush()
            print(f"\rstep {step} loss {loss.item():.4f}", end="", file=sys.stderr, flush=True)
        if val_data is not None and (step % config.eval_every == 0 or step == config.max_steps):
            val = validation_loss(ema, val_data, stats, frame_rate, noise_schedule, config.max_val_clips)
            figures = {**figures, "step": step, "val_loss": round(val, 5)}
            entry = {"step": step, "val_loss": round(val, 5)}
            if model_config.score_dim:
                entry["val_loss_text_only"] = round(validation_loss(ema, val_data, stats, frame_rate, noise_schedule,
                                                                    config.max_val_clips, with_score=False), 5)
            if config.focus_t is not None:
                entry["val_loss_focus"] = round(validation_loss(ema, val_data, stats, frame_rate, noise_schedule,
                                                                config.max_val_clips, t_top=config.focus_t), 5)
            log.write(json.dumps(entry) + "\n")
            log.flush()
        if time.monotonic() - last_save > config.save_every_s:
            save()
            last_save = time.monotonic()
    save()
    log.close()
    print(file=sys.stderr)
    return {**figures, "step": step}
