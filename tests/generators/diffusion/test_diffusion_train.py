"""The training recipe on a tiny fake clip corpus: cache, seeded resumable training, export, generation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from cadenza import Conditioning, Sampling, Studio
from cadenza.errors import InvalidConditioning
from cadenza.generators.diffusion.model import DiTConfig
from cadenza.generators.diffusion.train import DiffusionTrainConfig, train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning",
                                        "ignore:__array__ implementation:DeprecationWarning")

RATE = 16000
TINY = DiTConfig(latent_dim=8, cond_dim=16, layers=1, heads=2, head_dim=8, time_proj_dim=8, max_seconds=4.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``data/`` with 6 one-second FLAC clips (sines and noise) and clips.jsonl; ``codec/`` a tiny random codec."""
    from safetensors.torch import save_file

    from cadenza.data.audio_corpus import ClipRecord
    from cadenza.codec.model import CodecConfig, build_codec, codec_state_dict

    root = tmp_path_factory.mktemp("diffusion-data")
    data = root / "data"
    (data / "clips").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, (split, kind) in enumerate([("train", "sine"), ("train", "noise"), ("train", "sine"), ("train", "sine"),
                                       ("validation", "sine"), ("test", "noise")]):
        t = np.arange(RATE) / RATE
        audio = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) if kind == "sine" else 0.1 * rng.standard_normal(RATE)
        sf.write(data / "clips" / f"{i:06d}.flac", audio.astype(np.float32), RATE)
        record = ClipRecord(id=f"{i:06d}", path=f"clips/{i:06d}.flac", caption=f"a {kind} tone number {i}", seconds=1.0,
                            sample_rate=RATE, split=split, instruments=("flute",), programs=(73,), style="folk-song",
                            key="C major", tempo_bpm=100.0, time_signature="4/4", work=f"w{i}", collection="test",
                            transpose=0, license="public domain")
        lines.append(record.to_json())
    (data / "clips.jsonl").write_text("\n".join(lines) + "\n")
    (data / "BUILD.json").write_text(json.dumps({"clips": 6}))
    codec_dir = root / "codec"
    codec_dir.mkdir()
    config = CodecConfig(sample_rate=RATE, n_filters=4, dimension=8, n_q=2, bins=16, lstm=0)
    torch.manual_seed(0)
    save_file(codec_state_dict(build_codec(config)), str(codec_dir / "codec.safetensors"))
    (codec_dir / "codec.json").write_text(json.dumps({"config": config.to_dict(), "metrics": {}, "made_by": {}}))
    return root


def config_for(corpus, run, **kwargs):
    return DiffusionTrainConfig(data_dir=str(corpus / "data"), codec_dir=str(corpus / "codec"), run_dir=str(run),
                                max_steps=6, batch=3, warmup=2, eval_every=3, min_seconds=0.5, model=TINY,
                                threads=1, **kwargs)


def test_training_is_seeded_resumable_and_logged(corpus, tmp_path):
    whole = train(config_for(corpus, tmp_path / "whole"))
    assert whole["step"] == 6 and np.isfinite(whole["loss"])
    train(config_for(corpus, tmp_path / "split", stop_at=3))
    assert torch.load(tmp_path / "split" / "state.pt", weights_only=True)["step"] == 3
    train(config_for(corpus, tmp_path / "split"))
    a = torch.load(tmp_path / "whole" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "state.pt", weights_only=True)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6)
    log = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val_loss" in r] == [3, 6]
    cache = tmp_path / "whole" / "cache"
    stats = json.loads((cache / "stats.json").read_text())
    assert stats["frame_rate"] == 50 and len(stats["mean"]) == 8 and stats["std"] > 0
    assert torch.load(cache / "train.pt", weights_only=True)["latents"].shape == (4, 8, 50)


def test_export_loads_and_generates_through_studio_and_cli(corpus, tmp_path, monkeypatch):
    from cadenza.app.cli import main
    from cadenza.generators.diffusion.export import export_checkpoint

    run = tmp_path / "run"
    train(config_for(corpus, run))
    spec = export_checkpoint(run, corpus / "codec", corpus / "data", tmp_path / "models" / "tiny-diffusion",
                             "tiny-diffusion", command="cadenza train diffusion (test)")
    assert spec.config["format"] == "cadenza" and set(spec.files) == {"weights", "codec"}
    assert spec.metrics["steps"] == 6 and spec.metrics["final_val_loss"] is not None
    assert spec.made_by["recipe"] == "cadenza train diffusion"

    studio = Studio(model_dirs=[tmp_path / "models"])
    outs = studio.generate("tiny-diffusion", Conditioning(text="a calm solo piano piece in C major", duration_s=0.9),
                           Sampling(seed=1, steps=4, num_samples=2))  # 45 latent frames: an odd count, patched in twos
    assert [o.samples.shape for o in outs] == [(1, int(0.9 * RATE))] * 2 and outs[0].sample_rate == RATE
    assert outs[0].provenance.notes["scheduler"] == "dpm++" and outs[0].provenance.notes["cfg_scale"] == 4.0
    base = outs[0].samples
    for sampling in (Sampling(seed=outs[0].provenance.seed, steps=4, scheduler="heun"),
                     Sampling(seed=outs[0].provenance.seed, steps=4, cfg_scale=7.0)):
        again = studio.generate("tiny-diffusion", Conditioning(text="a calm solo piano piece in C major",
                                                               duration_s=0.9), sampling)[0]
        assert not np.allclose(again.samples, base)

    assert spec.config["model"]["max_seconds"] == 1.0  # the clips' length: longer requests are refused
    with pytest.raises(InvalidConditioning, match="at most"):
        studio.generate("tiny-diffusion", Conditioning(text="x", duration_s=1.5), Sampling(steps=2))

    monkeypatch.setenv("CADENZA_MODELS", str(tmp_path / "models"))
    out = tmp_path / "calm.wav"
    assert main(["generate", "tiny-diffusion", "--text", "a calm solo piano piece in C major", "--duration", "1",
                 "--steps", "3", "--seed", "2", "-o", str(out)]) == 0
    assert sf.info(str(out)).frames == RATE
    assert main(["generate", "tiny-diffusion", "--prompt", str(out), "--strength", "0.5", "--steps", "4",
                 "-o", str(tmp_path / "varied.wav")]) == 0
    assert sf.info(str(tmp_path / "varied.wav")).frames == RATE


def test_focus_t_draws_most_timesteps_low_and_leaves_the_other_draws_alone():
    from cadenza.generators.diffusion.model import NUM_TRAIN_TIMESTEPS
    from cadenza.generators.diffusion.train import FOCUS_SHARE, step_draws

    plain, focused = DiffusionTrainConfig(batch=64), DiffusionTrainConfig(batch=64, focus_t=0.4)
    low, total = 0, 0
    for step in range(20):
        a = step_draws(plain, step, 100, 400, 8, 50.0)
        b = step_draws(focused, step, 100, 400, 8, 50.0)
        for key in ("index", "offsets", "noise", "drop", "drop_score"):  # only the timesteps change
            assert torch.equal(a[key], b[key])
        assert a["frames"] == b["frames"]
        low += int((b["t"] < 0.4 * NUM_TRAIN_TIMESTEPS).sum())
        total += b["t"].numel()
        assert int(b["t"].max()) < NUM_TRAIN_TIMESTEPS
    expected = FOCUS_SHARE + (1 - FOCUS_SHARE) * 0.4  # focused draws, plus the full-range ones that land low
    assert abs(low / total - expected) < 0.05
    with pytest.raises(ValueError, match="focus_t"):
        DiffusionTrainConfig(focus_t=1.5)
