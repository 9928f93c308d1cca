"""Training of the small text-to-music codec LM on cached codes + caption states.

Random crops of ``crop_frames`` codec frames, captions dropped to the empty condition with probability
``cond_dropout`` (what classifier-free guidance needs), AdamW with warmup and cosine decay, seeded and
resumable from ``<run>/state.pt`` (tensors only, ``weights_only=True``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig, init_weights
from cadenza.generators.codec_lm.lm_data import LMSplit, load_split
from cadenza.training import load_state, save_state, warmup_cosine_lr


@dataclass(frozen=True)
class LMTrainConfig:
    cache_dir: str = "data/codec_lm"
    run_dir: str = "runs/codec_lm"
    max_steps: int = 1500
    minutes: float | None = None
    stop_at: int | None = None  # stop (saved, resumable) at this step; the schedule still runs to max_steps
    batch: int = 8
    crop_frames: int = 150
    lr: float = 1e-3
    warmup: int = 100
    cond_dropout: float = 0.1
    seed: int = 0
    threads: int = 2
    log_every: int = 25
    save_every: int = 100
    eval_every: int = 300


def default_lm_config(n_q: int, card: int, cond_dim: int = 384) -> CodecLMConfig:
    """The small default: 4 layers of width 256 (about 6 M parameters) over the codec's codebooks."""
    return CodecLMConfig(n_q=n_q, card=card, dim=256, num_heads=8, num_layers=4, ffn_dim=1024, cross_attention=True,
                         cond_dim=cond_dim, norm_first=True, max_seq_len=1024)


def _lr(step: int, config: LMTrainConfig) -> float:
    return warmup_cosine_lr(step, peak=config.lr, warmup=config.warmup, total=config.max_steps, floor_ratio=0.05)


def make_batch(data: LMSplit, rows: list[int], starts: list[int], frames: int, drop: list[bool]):
    """``(codes [B, K, frames] long, states [B, S, D] float, mask [B, S] bool)``; dropped rows get the
    empty condition (zero states, all-False mask)."""
    codes = torch.from_numpy(np.stack([data.codes[r, :, s:s + frames] for r, s in zip(rows, starts)]).astype(np.int64))
    states = torch.from_numpy(data.states[rows].astype(np.float32))
    mask = torch.from_numpy(data.mask[rows].copy())
    for i, dropped in enumerate(drop):
        if dropped:
            states[i] = 0
            mask[i] = False
    return codes, states, mask


@torch.inference_mode()
def validation_loss(model: CodecLM, data: LMSplit, frames: int, batch: int = 8) -> float:
    model.eval()
    losses = []
    for start in range(0, len(data), batch):
        rows = list(range(start, min(len(data), start + batch)))
        codes, states, mask = make_batch(data, rows, [0] * len(rows), min(frames, data.codes.shape[2]), [False] * len(rows))
        losses.append(CodecLM.loss(model.forward_train(codes, states, mask), codes).item() * len(rows))
    model.train()
    return round(sum(losses) / len(data), 4)


def train_lm(config: LMTrainConfig, lm_config: CodecLMConfig | None = None, log=print) -> Path:
    """Train (or resume) in ``config.run_dir``; stops at ``max_steps`` or after ``minutes``."""
    torch.set_num_threads(config.threads)
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    train = load_split(config.cache_dir, "train")
    val = load_split(config.cache_dir, "validation")
    if lm_config is None:
        meta = json.loads((Path(config.cache_dir) / "meta.json").read_text())
        lm_config = default_lm_config(n_q=meta["n_q"], card=meta["card"], cond_dim=train.states.shape[2])
    (run / "config.json").write_text(json.dumps({"train": asdict(config), "lm": lm_config.to_dict()}, indent=1))
    torch.manual_seed(config.seed)
    model = CodecLM(lm_config)
    init_weights(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=0.1)
    step = 0
    state_path = run / "state.pt"
    if (state := load_state(state_path, model, optimizer)) is not None:
        step = int(state["step"])
        log(f"resumed at step {step}")
    frames = min(config.crop_frames, train.codes.shape[2])
    started = time.time()
    model.train()
    with open(run / "log.jsonl", "a") as log_file:
        while step < min(config.max_steps, config.stop_at or config.max_steps):
            if config.minutes is not None and time.time() - started > config.minutes * 60:
                break
            rng = random.Random(config.seed * 1_000_003 + step)
            rows = [rng.randrange(len(train)) for _ in range(config.batch)]
            starts = [rng.randrange(train.codes.shape[2] - frames + 1) for _ in rows]
            drop = [rng.random() < config.cond_dropout for _ in rows]
            codes, states, mask = make_batch(train, rows, starts, frames, drop)
            for group in optimizer.param_groups:
                group["lr"] = _lr(step, config)
            loss = CodecLM.loss(model.forward_train(codes, states, mask), codes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step % config.log_every == 0:
                entry = {"step": step, "loss": round(loss.item(), 4), "lr": _lr(step, config),
                         "minutes": round((time.time() - started) / 60, 2)}
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
                log(json.dumps(entry))
            if step % config.save_every == 0 or step in (config.max_steps, config.stop_at):
                save_state(state_path, model, optimizer, step)
            if step % config.eval_every == 0 or step == config.max_steps:
                entry = {"step": step, "val_loss": validation_loss(model, val, frames)}
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
                log(json.dumps(entry))
    save_state(state_path, model, optimizer, step)
    return run

