"""Training loop for one DDSP instrument: random crops, multi-scale spectral loss, Adam.

Seeded and resumable: ``<run>/state.pt`` (model, optimizer, step, random state) is saved every minute
and at the end; running again continues. Losses go to ``<run>/log.jsonl``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from cadenza.fileio import atomic_path, atomic_write_text
from cadenza.generators.ddsp import core
from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig
from cadenza.generators.ddsp.synth import synthesize


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str
    run_dir: str
    model: DecoderConfig = field(default_factory=DecoderConfig)
    batch: int = 8
    crop_frames: int = 200
    lr: float = 1e-3
    final_lr: float = 1e-4
    max_steps: int = 3000
    minutes: float | None = None
    seed: int = 0
    threads: int = 1
    val_every: int = 250
    val_crops: int = 16


class Dataset:
    """The arrays ``data.py`` wrote, memory-mapped; crops of ``frames`` frames (+1 for the synth)."""

    def __init__(self, data_dir: str | Path) -> None:
        d = Path(data_dir)
        self.info = json.loads((d / "dataset.json").read_text())
        self.audio = np.load(d / "audio.npy", mmap_mode="r")
        self.f0 = np.load(d / "f0.npy", mmap_mode="r")
        self.loudness = np.load(d / "loudness.npy", mmap_mode="r")
        self.hop = int(self.info["hop"])
        pieces = self.info["pieces"]
        n_val = int(self.info.get("validation_pieces", 0))
        self.train_pieces = pieces[: len(pieces) - n_val] if n_val else pieces
        self.val_pieces = pieces[len(pieces) - n_val:] if n_val else pieces[-1:]

    def crops(self, pieces: list[dict], count: int, frames: int, rng: np.random.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(f0 [count, frames + 1], loudness [count, frames + 1], audio [count, frames * hop])``."""
        usable = [p for p in pieces if p["frames"] > frames + 1] or pieces
        weights = np.array([max(p["frames"] - frames - 1, 1) for p in usable], dtype=np.float64)
        chosen = rng.choice(len(usable), size=count, p=weights / weights.sum())
        f0s, lds, wavs = [], [], []
        for i in chosen:
            piece = usable[i]
            span = min(frames + 1, piece["frames"])
            start = piece["frame"] + int(rng.integers(0, piece["frames"] - span + 1))
            f0 = np.asarray(self.f0[start:start + span])
            ld = np.asarray(self.loudness[start:start + span])
            wav = np.asarray(self.audio[start * self.hop:(start + span - 1) * self.hop])
            pad = frames + 1 - span
            f0s.append(np.pad(f0, (0, pad), mode="edge"))
            lds.append(np.pad(ld, (0, pad), constant_values=-120.0))
            wavs.append(np.pad(wav, (0, frames * self.hop - wav.shape[0])))
        return (torch.from_numpy(np.stack(f0s)), torch.from_numpy(np.stack(lds)),
                torch.from_numpy(np.stack(wavs).astype(np.float32)))


def reconstruct(model: DDSPDecoder, f0: torch.Tensor, loudness: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Audio for training crops: ``f0, loudness [B, F + 1]``, ``noise [B, F + 1, hop]`` -> ``[B, F * hop]``."""
    controls, _ = model(f0, loudness)
    audio, _ = synthesize(controls, model.config.hop, model.config.sample_rate, noise, model.reverb_ir)
    return audio[:, : (f0.shape[1] - 1) * model.config.hop]


def _lr(config: TrainConfig, step: int) -> float:
    """Exponential decay from ``lr`` to ``final_lr`` over ``max_steps`` (after a 50-step warm-up)."""
    warm = min(1.0, (step + 1) / 50)
    frac = min(step / max(config.max_steps, 1), 1.0)
    return warm * config.lr * (config.final_lr / config.lr) ** frac


def validation_loss(model: DDSPDecoder, data: Dataset, config: TrainConfig) -> float:
    rng = np.random.default_rng(12345)  # the same crops every time
    f0, ld, target = data.crops(data.val_pieces, config.val_crops, config.crop_frames, rng)
    noise = torch.from_numpy(rng.uniform(-1, 1, (f0.shape[0], f0.shape[1], model.config.hop)).astype(np.float32))
    with torch.no_grad():
        return float(core.multiscale_spectral_loss(reconstruct(model, f0, ld, noise), target))


def train(config: TrainConfig) -> dict:
    """Train (or resume) until ``max_steps`` or ``minutes``; returns the last log record."""
    torch.set_num_threads(max(1, config.threads))
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    data = Dataset(config.data_dir)
    if data.hop != config.model.hop or int(data.info["sample_rate"]) != config.model.sample_rate:
        raise ValueError(f"data at {data.info['sample_rate']} Hz / hop {data.hop} does not match the model config")
    atomic_write_text(run / "config.json", json.dumps({"model": config.model.to_dict(),
                                                       "train": {k: v for k, v in asdict(config).items() if k != "model"}},
                                                      indent=1) + "\n")
    torch.manual_seed(config.seed)
    model = DDSPDecoder(config.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    step, seconds_before = 0, 0.0
    state_path = run / "state.pt"
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds_before = int(state["step"]), float(state.get("seconds", 0.0))
        rng.bit_generator.state = json.loads(state["rng"])
        print(f"resuming at step {step}", file=sys.stderr)

    def save() -> None:
        with atomic_path(state_path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "rng": json.dumps(rng.bit_generator.state), "seconds": seconds_before + time.time() - start}, tmp)

    start = last_save = time.time()
    deadline = start + config.minutes * 60 if config.minutes else math.inf
    record: dict = {}
    running = None
    with (run / "log.jsonl").open("a") as log:
        while step < config.max_steps and time.time() < deadline:
            for group in optimizer.param_groups:
                group["lr"] = _lr(config, step)
            f0, ld, target = data.crops(data.train_pieces, config.batch, config.crop_frames, rng)
            noise = torch.from_numpy(rng.uniform(-1, 1, (config.batch, f0.shape[1], config.model.hop)).astype(np.float32))
            loss = core.multiscale_spectral_loss(reconstruct(model, f0, ld, noise), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            optimizer.step()
            step += 1
            value = loss.item()
            running = value if running is None else 0.95 * running + 0.05 * value
            if step % 25 == 0 or step == config.max_steps:
                record = {"step": step, "loss": round(running, 4), "lr": _lr(config, step),
                          "seconds": round(seconds_before + time.time() - start, 1)}
                if step % config.val_every == 0 or step == config.max_steps:
                    model.eval()
                    record["val_loss"] = round(validation_loss(model, data, config), 4)
                    model.train()
                log.write(json.dumps(record) + "\n")
                log.flush()
                print(json.dumps(record), file=sys.stderr, flush=True)
            if time.time() - last_save > 60:
                save()
                last_save = time.time()
    model.eval()
    final = {"step": step, "loss": round(running, 4) if running is not None else None,
             "val_loss": round(validation_loss(model, data, config), 4),
             "seconds": round(seconds_before + time.time() - start, 1)}
    save()
    with (run / "log.jsonl").open("a") as log:
        log.write(json.dumps(final) + "\n")
    print(json.dumps(final), file=sys.stderr)
    return final
