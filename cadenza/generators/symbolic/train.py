"""Training recipe for the symbolic model: seeded, resumable, logs train/validation loss, exports a checkpoint.

    cadenza train symbolic --prepare            # corpus -> token cache (data/symbolic/)
    cadenza train symbolic --minutes 90         # train (resumes from runs/symbolic/state.pt if present)
    cadenza train symbolic --export checkpoints/remi-folk-small

Sequences are packed: control prefix + span + EOS, one after another in rows of ``seq_len`` tokens,
so no compute goes to padding (the model learns that BOS starts a new piece).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cadenza.fileio import atomic_write_text
from cadenza.generators.symbolic.dataset import ChunkSampler, TokenCache
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
from cadenza.tokenizers.remi import RemiTokenizer
from cadenza.training import load_state, save_state, warmup_cosine_lr


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str = "data/symbolic"
    run_dir: str = "runs/symbolic"
    seq_len: int = 1024
    batch_rows: int = 4
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 150
    max_steps: int = 2600
    weight_decay: float = 0.1
    eval_every: int = 250
    eval_batches: int = 8
    save_every: int = 50
    seed: int = 1234
    threads: int = 2
    minutes: float | None = None  # stop (and save) after this wall-clock budget
    init_from: str | None = None  # a checkpoint folder whose weights start the run (fine-tuning)
    infill_rate: float = 0.0  # share of training sequences in fill-in-the-middle form
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 4
    ffn_dim: int = 768


def packed_batch(sampler: ChunkSampler, rows: int, seq_len: int, pad_id: int) -> torch.Tensor:
    """``[rows, seq_len + 1]`` of whole sequences packed end to end (the +1 gives next-token targets)."""
    out = np.full((rows, seq_len + 1), pad_id, dtype=np.int64)
    for r in range(rows):
        filled = 0
        while filled < seq_len + 1:
            seq = sampler.sample_sequence()
            take = min(len(seq), seq_len + 1 - filled)
            out[r, filled:filled + take] = seq[:take]
            filled += take
    return torch.from_numpy(out)


def init_weights(model: SymbolicTransformer, checkpoint_dir: str) -> None:
    """Start ``model`` from a checkpoint folder's weights (same shape but for a grown vocabulary).

    Tokens the checkpoint lacks (e.g. the infilling sentinels, appended last) start at the mean embedding,
    so they begin as an "average" token rather than noise of a different scale.
    """
    from safetensors.torch import load_file

    tensors = load_file(str(Path(checkpoint_dir) / "model.safetensors"))
    embed = tensors["embed.weight"]
    own = model.embed.weight
    if embed.shape[1] != own.shape[1] or embed.shape[0] > own.shape[0]:
        raise ValueError(f"{checkpoint_dir}: embedding {tuple(embed.shape)} cannot grow into {tuple(own.shape)}")
    grown = own.detach().clone()
    grown[: embed.shape[0]] = embed
    grown[embed.shape[0]:] = embed.mean(0)
    tensors["embed.weight"] = grown
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"{checkpoint_dir}: weights do not fit (missing {missing}, unexpected {unexpected})")


def lr_at(step: int, cfg: TrainConfig) -> float:
    return warmup_cosine_lr(step, peak=cfg.lr, warmup=cfg.warmup_steps, total=cfg.max_steps, floor_ratio=cfg.min_lr_ratio)


@torch.no_grad()
def evaluate(model: SymbolicTransformer, split: TokenCache, tokenizer: RemiTokenizer, cfg: TrainConfig,
             infill_rate: float = 0.0) -> float:
    """Mean next-token loss on ``eval_batches`` fixed (seeded, unaugmented) packed batches
    (``infill_rate``: the share of them in fill-in-the-middle form)."""
    model.eval()
    sampler = ChunkSampler(split, tokenizer, cfg.seq_len, max_bars=64, augment=False, seed=cfg.seed + 1,
                           infill_rate=infill_rate)
    losses = []
    for _ in range(cfg.eval_batches):
        batch = packed_batch(sampler, cfg.batch_rows, cfg.seq_len, tokenizer.pad_id)
        logits = model(batch[:, :-1])
        losses.append(F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), ignore_index=tokenizer.pad_id).item())
    model.train()
    return float(np.mean(losses))


def train(cfg: TrainConfig, log=print) -> Path:
    """Train (or resume) under ``cfg.run_dir``; returns the path of the latest state file."""
    torch.set_num_threads(cfg.threads)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    tokenizer = RemiTokenizer.load(Path(cfg.data_dir) / "tokenizer.json")
    train_split = TokenCache(Path(cfg.data_dir) / "train.npz")
    val_split = TokenCache(Path(cfg.data_dir) / "validation.npz")
    model_cfg = TransformerConfig(vocab_size=len(tokenizer), dim=cfg.dim, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                  ffn_dim=cfg.ffn_dim, max_seq_len=cfg.seq_len)
    torch.manual_seed(cfg.seed)
    model = SymbolicTransformer(model_cfg)
    if cfg.init_from:
        init_weights(model, cfg.init_from)
        log(f"weights from {cfg.init_from}")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    sampler = ChunkSampler(train_split, tokenizer, cfg.seq_len, max_bars=64, augment=True, seed=cfg.seed,
                           infill_rate=cfg.infill_rate)
    state_path = run / "state.pt"
    step = 0
    if (state := load_state(state_path, model, optimizer)) is not None:
        step = int(state["step"])
        sampler.rng = np.random.default_rng(int(state["data_seed"]))
        log(f"resumed from {state_path} at step {step}")
    atomic_write_text(run / "config.json", json.dumps({"train": asdict(cfg), "model": model_cfg.to_dict()}, indent=1))
    log_file = open(run / "log.jsonl", "a")
    started = time.time()
    tokens_seen = 0

    def save() -> None:
        data_seed = int(sampler.rng.integers(2**62))
        sampler.rng = np.random.default_rng(data_seed)  # resuming restarts the data stream from this seed
        save_state(state_path, model, optimizer, step, data_seed=data_seed)

    model.train()
    while step < cfg.max_steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = packed_batch(sampler, cfg.batch_rows, cfg.seq_len, tokenizer.pad_id)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), ignore_index=tokenizer.pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        tokens_seen += batch.numel()
        record = {"step": step, "loss": round(loss.item(), 4), "lr": round(lr_at(step, cfg), 6),
                  "grad_norm": round(grad_norm.item(), 3), "tok_s": round(tokens_seen / (time.time() - started), 1)}
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            record["val_loss"] = round(evaluate(model, val_split, tokenizer, cfg), 4)
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if step % 10 == 0 or "val_loss" in record:
            log(json.dumps(record))
        out_of_time = cfg.minutes is not None and time.time() - started > cfg.minutes * 60
        if step % cfg.save_every == 0 or step == cfg.max_steps or out_of_time:
            save()
        if out_of_time:
            log(f"time budget of {cfg.minutes} min reached at step {step}; run again to resume")
            break
    log_file.close()
    return state_path


if __name__ == "__main__":  # a direct entry for long background runs; the CLI calls train() too
    import argparse

    parser = argparse.ArgumentParser()
    for f in TrainConfig.__dataclass_fields__.values():
        kind = {"minutes": float, "init_from": str}.get(f.name, type(f.default))
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    train(TrainConfig(**vars(parser.parse_args())))
