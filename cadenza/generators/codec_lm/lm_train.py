"""Training of the small text-to-music codec LM on cached codes + caption states + clip scores.

Random crops of ``crop_frames`` codec frames with the frame-aligned score of the notes each clip was
rendered from (``cadenza.music.score_roll``). Condition dropout, drawn per row: with ``cond_dropout``
both text and score go (the empty condition classifier-free guidance needs), with ``score_dropout`` the
score alone (the text-only path), with ``text_dropout`` the text alone (a score without a description).
AdamW with warmup and cosine decay, seeded and resumable from ``<run>/state.pt`` (tensors only,
``weights_only=True``). ``init_from`` starts from an exported checkpoint's LM (e.g. the text-only
``musicgen-folk-small``): its weights are kept and the new score projection starts at zero, so step 0
behaves exactly like that model.
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
from cadenza.music.score_roll import SCORE_DIM, crop_roll, empty_roll
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
    score_dropout: float = 0.3
    text_dropout: float = 0.1
    init_from: str | None = None  # an exported checkpoint folder whose lm.safetensors starts the run
    seed: int = 0
    threads: int = 2
    log_every: int = 25
    save_every: int = 100
    eval_every: int = 300


def default_lm_config(n_q: int, card: int, cond_dim: int = 384, score_dim: int | None = SCORE_DIM) -> CodecLMConfig:
    """The small default: 4 layers of width 256 (about 6 M parameters) over the codec's codebooks, reading
    a frame-aligned score (``score_dim``; None: text only)."""
    return CodecLMConfig(n_q=n_q, card=card, dim=256, num_heads=8, num_layers=4, ffn_dim=1024, cross_attention=True,
                         cond_dim=cond_dim, norm_first=True, max_seq_len=1024, score_dim=score_dim)


def _lr(step: int, config: LMTrainConfig) -> float:
    return warmup_cosine_lr(step, peak=config.lr, warmup=config.warmup, total=config.max_steps, floor_ratio=0.05)


def make_batch(data: LMSplit, rows: list[int], starts: list[int], frames: int, drop: list[bool],
               frame_rate: float | None = None, drop_score: list[bool] | None = None):
    """``(codes [B, K, frames] long, states [B, S, D] float, mask [B, S] bool, score)``; ``drop`` rows get
    the empty text condition (zero states, all-False mask). ``score [B, frames, SCORE_DIM]`` when
    ``frame_rate`` is given (the crop's notes; all zero where ``drop_score``), else None."""
    codes = torch.from_numpy(np.stack([data.codes[r, :, s:s + frames] for r, s in zip(rows, starts)]).astype(np.int64))
    states = torch.from_numpy(data.states[rows].astype(np.float32))
    mask = torch.from_numpy(data.mask[rows].copy())
    for i, dropped in enumerate(drop):
        if dropped:
            states[i] = 0
            mask[i] = False
    score = None
    if frame_rate is not None:
        dropped = drop_score or [False] * len(rows)
        score = torch.from_numpy(np.stack([empty_roll(frames) if d else crop_roll(data.clip_notes(r), s / frame_rate,
                                                                                   frames, frame_rate)
                                           for r, s, d in zip(rows, starts, dropped)]))
    return codes, states, mask, score


@torch.inference_mode()
def validation_loss(model: CodecLM, data: LMSplit, frames: int, batch: int = 8, frame_rate: float | None = None,
                    with_score: bool = True) -> float:
    """Mean loss over whole clips (first ``frames``), text always given; the score too when the model
    reads one and ``with_score`` (else its text-only path)."""
    model.eval()
    losses = []
    scored = model.config.score_dim is not None and frame_rate is not None
    for start in range(0, len(data), batch):
        rows = list(range(start, min(len(data), start + batch)))
        codes, states, mask, score = make_batch(data, rows, [0] * len(rows), min(frames, data.codes.shape[2]),
                                                [False] * len(rows), frame_rate if scored else None,
                                                [not with_score] * len(rows))
        losses.append(CodecLM.loss(model.forward_train(codes, states, mask, score=score), codes).item() * len(rows))
    model.train()
    return round(sum(losses) / len(data), 4)


def load_initial_weights(model: CodecLM, checkpoint_dir: str) -> None:
    """Copy an exported checkpoint's ``lm.safetensors`` into ``model``; only the score projection may be
    missing from it (it then starts at zero, so the model begins as the checkpoint)."""
    from safetensors.torch import load_file

    from cadenza.errors import CheckpointError

    path = Path(checkpoint_dir) / "lm.safetensors"
    if not path.is_file():
        raise CheckpointError(f"--init-from {checkpoint_dir}: no lm.safetensors there")
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in load_file(path).items()}, strict=False)
    if unexpected or any(not k.startswith("score_proj.") for k in missing):
        raise CheckpointError(f"--init-from {checkpoint_dir}: weights do not fit this model "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    if model.score_proj is not None and missing:
        torch.nn.init.zeros_(model.score_proj.weight)
        torch.nn.init.zeros_(model.score_proj.bias)


def train_lm(config: LMTrainConfig, lm_config: CodecLMConfig | None = None, log=print) -> Path:
    """Train (or resume) in ``config.run_dir``; stops at ``max_steps`` or after ``minutes``."""
    torch.set_num_threads(config.threads)
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    train = load_split(config.cache_dir, "train")
    val = load_split(config.cache_dir, "validation")
    meta = json.loads((Path(config.cache_dir) / "meta.json").read_text())
    if lm_config is None:
        lm_config = default_lm_config(n_q=meta["n_q"], card=meta["card"], cond_dim=train.states.shape[2],
                                      score_dim=SCORE_DIM if train.notes is not None else None)
    frame_rate = float(meta["frame_rate"]) if lm_config.score_dim is not None else None
    (run / "config.json").write_text(json.dumps({"train": asdict(config), "lm": lm_config.to_dict()}, indent=1))
    torch.manual_seed(config.seed)
    model = CodecLM(lm_config)
    init_weights(model)
    if config.init_from:
        load_initial_weights(model, config.init_from)
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
            draws = [rng.random() for _ in rows]
            drop_all = [u < config.cond_dropout for u in draws]
            drop_score = [a or u < config.cond_dropout + config.score_dropout for a, u in zip(drop_all, draws)]
            drop_text = [a or (config.cond_dropout + config.score_dropout <= u
                               < config.cond_dropout + config.score_dropout + config.text_dropout)
                         for a, u in zip(drop_all, draws)]
            codes, states, mask, score = make_batch(train, rows, starts, frames, drop_text, frame_rate, drop_score)
            for group in optimizer.param_groups:
                group["lr"] = _lr(step, config)
            loss = CodecLM.loss(model.forward_train(codes, states, mask, score=score), codes)
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
                entry = {"step": step, "val_loss": validation_loss(model, val, frames, frame_rate=frame_rate)}
                if frame_rate is not None:
                    entry["val_loss_text_only"] = validation_loss(model, val, frames, frame_rate=frame_rate,
                                                                  with_score=False)
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
                log(json.dumps(entry))
    save_state(state_path, model, optimizer, step)
    return run

