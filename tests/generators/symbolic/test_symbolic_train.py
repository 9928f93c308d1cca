"""The training recipe on the tiny corpus: seeded steps, validation loss, resume, export, generate."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cadenza.conditioning import Conditioning, Sampling
from cadenza.generators.symbolic.evaluate import test_loss as held_out_losses
from cadenza.generators.symbolic.export import export_checkpoint
from cadenza.generators.symbolic.generator import capabilities_of
from cadenza.generators.symbolic.train import TrainConfig, lr_at, packed_batch, train
from cadenza.studio import Studio
from cadenza.tokenizers.remi import RemiTokenizer


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def tiny_config(data, run, max_steps: int) -> TrainConfig:
    return TrainConfig(data_dir=str(data), run_dir=str(run), seq_len=128, batch_rows=2, max_steps=max_steps,
                       eval_every=3, eval_batches=1, save_every=1, warmup_steps=2, threads=1, dim=32, n_layers=1,
                       n_heads=2, ffn_dim=64)


def read_log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def test_train_resume_export_generate(prepared, tmp_path, restore_threads):
    data, _ = prepared
    run = tmp_path / "run"
    messages: list[str] = []
    state_path = train(tiny_config(data, run, max_steps=3), log=messages.append)
    assert state_path == run / "state.pt" and state_path.is_file()
    state = torch.load(state_path, weights_only=True)
    assert state["step"] == 3 and set(state) == {"model", "optimizer", "step", "data_seed"}
    log = read_log(run)
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) for r in log)
    assert "val_loss" in log[2] and math.isfinite(log[2]["val_loss"]) and "val_loss" not in log[0]
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["dim"] == 32 and config["model"]["max_seq_len"] == 128 and config["train"]["max_steps"] == 3

    messages.clear()
    train(tiny_config(data, run, max_steps=5), log=messages.append)
    assert any("resumed" in m and "step 3" in m for m in messages)
    log = read_log(run)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert "val_loss" in log[4]
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 5

    losses = held_out_losses(run, data, batches=1)
    assert set(losses) == {"val_loss", "test_loss", "test_infill_loss"} and all(math.isfinite(v) for v in losses.values())

    out = tmp_path / "models" / "trained-tiny"
    spec = export_checkpoint(run, data, out, "trained-tiny", metrics=losses, command="pytest")
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert spec.capabilities == capabilities_of(RemiTokenizer()) and spec.family == "symbolic"
    assert spec.metrics["steps"] == 5 and spec.metrics["final_val_loss"] == log[4]["val_loss"]
    assert spec.metrics["test_loss"] == losses["test_loss"]
    assert "Non-commercial (Essen)" in spec.license and "excluded" in spec.license
    assert spec.made_by["command"] == "pytest"
    spec.verify()

    studio = Studio(model_dirs=[tmp_path / "models"])
    outputs = studio.generate("trained-tiny", Conditioning(key="D major", time_signature="3/4", bars=2),
                              Sampling(seed=0, max_tokens=100))
    notes = outputs[0].provenance.notes
    assert notes["bars_written"] == 2 and notes["key"] == "D major" and notes["time_signature"] == "3/4"
    assert outputs[0].provenance.checkpoint_sha256 == spec.sha256


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(0.55e-3)
    assert lr_at(110, cfg) == pytest.approx(1e-4) and lr_at(500, cfg) == pytest.approx(1e-4)


def test_packed_batch_has_no_padding(prepared):
    from cadenza.generators.symbolic.dataset import ChunkSampler, TokenCache
    from cadenza.tokenizers.remi import RemiTokenizer

    data, _ = prepared
    tok = RemiTokenizer.load(data / "tokenizer.json")
    batch = packed_batch(ChunkSampler(TokenCache(data / "train.npz"), tok, 64, seed=0), rows=3, seq_len=64, pad_id=tok.pad_id)
    assert batch.shape == (3, 65)
    assert not bool((batch == tok.pad_id).any())
    assert bool((batch[:, 0] == tok.bos_id).all())


def test_init_from_grows_the_vocabulary_with_mean_rows(tmp_path):
    """Fine-tuning starts from a checkpoint's weights; tokens it lacks (the infilling sentinels, appended
    last) start at its mean embedding; a checkpoint that does not fit is refused."""
    from safetensors.torch import save_file

    from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
    from cadenza.generators.symbolic.train import init_weights

    old_vocab = len(RemiTokenizer(infill=False))
    config = dict(dim=32, n_layers=1, n_heads=2, ffn_dim=64, max_seq_len=64)
    torch.manual_seed(0)
    base = SymbolicTransformer(TransformerConfig(vocab_size=old_vocab, **config))
    (tmp_path / "base").mkdir()
    save_file({k: v.contiguous() for k, v in base.state_dict().items() if k != "lm_head.weight"},
              str(tmp_path / "base" / "model.safetensors"))
    grown = SymbolicTransformer(TransformerConfig(vocab_size=old_vocab + 2, **config))
    init_weights(grown, str(tmp_path / "base"))
    embed, old = grown.embed.weight.detach(), base.embed.weight.detach()
    assert torch.equal(embed[:old_vocab], old) and torch.allclose(embed[old_vocab:], old.mean(0).expand(2, -1))
    assert torch.equal(grown.layers[0].mlp.up_proj.weight, base.layers[0].mlp.up_proj.weight)
    smaller = SymbolicTransformer(TransformerConfig(vocab_size=old_vocab - 1, **config))
    with pytest.raises(ValueError, match="cannot grow"):
        init_weights(smaller, str(tmp_path / "base"))
