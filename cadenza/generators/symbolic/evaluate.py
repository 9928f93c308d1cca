"""Held-out losses of a training run (validation and test splits), for the checkpoint manifest."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cadenza.generators.symbolic.dataset import TokenCache
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
from cadenza.generators.symbolic.train import TrainConfig, evaluate
from cadenza.tokenizers.remi import RemiTokenizer


def test_loss(run_dir: str | Path, data_dir: str | Path, batches: int = 16) -> dict:
    """``{"val_loss", "test_loss"[, "test_infill_loss"]}``: mean next-token loss on fixed, unaugmented packed
    batches (the last with every sequence in fill-in-the-middle form, for a tokenizer with those tokens)."""
    run, data = Path(run_dir), Path(data_dir)
    config = json.loads((run / "config.json").read_text())
    model = SymbolicTransformer(TransformerConfig(**config["model"]))
    model.load_state_dict(torch.load(run / "state.pt", weights_only=True)["model"])
    tokenizer = RemiTokenizer.load(data / "tokenizer.json")
    cfg = TrainConfig(**{**config["train"], "eval_batches": batches})
    losses = {split.replace("validation", "val") + "_loss": round(evaluate(model, TokenCache(data / f"{split}.npz"), tokenizer, cfg), 4)
              for split in ("validation", "test")}
    if tokenizer.infill:  # every sequence with a gap moved last: how well the model fills bars in
        losses["test_infill_loss"] = round(evaluate(model, TokenCache(data / "test.npz"), tokenizer, cfg, infill_rate=1.0), 4)
    return losses
