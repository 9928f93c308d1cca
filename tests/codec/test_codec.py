"""Our small codec: built from audiocraft modules, trained a few steps, exported and reloaded exactly."""

import importlib.util
import json

import numpy as np
import pytest
import soundfile
import torch

if importlib.util.find_spec("audiocraft") is None:
    pytest.skip("audiocraft is not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from cadenza.codec.model import CodecConfig, build_codec, load_codec  # noqa: E402
from cadenza.codec.train import MultiScaleMelLoss, si_snr_db  # noqa: E402
from cadenza.errors import CheckpointError  # noqa: E402

TINY = CodecConfig(n_filters=4, dimension=8, n_q=2, bins=16, lstm=0)


def test_shapes_and_frame_rate():
    model = build_codec(TINY).eval()
    wav = torch.randn(2, 1, 16000) * 0.1
    codes, scale = model.encode(wav)
    assert codes.shape == (2, 2, 50) and codes.dtype == torch.long and TINY.frame_rate == 50
    assert model.decode(codes, scale).shape == (2, 1, 16000)
    assert model.encoder(wav).shape == (2, 8, 50)  # the continuous latent the diffusion family uses


def test_config_round_trip_and_bad_fields():
    assert CodecConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(CheckpointError, match="unknown"):
        CodecConfig.from_dict({"nope": 1})
    with pytest.raises(CheckpointError, match="multiple"):
        CodecConfig(sample_rate=16001)


def test_losses():
    x = torch.sin(torch.linspace(0, 2000, 16000))[None, None]
    assert MultiScaleMelLoss(16000)(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert MultiScaleMelLoss(16000)(x, 0.5 * x).item() > 0.1
    assert si_snr_db(x[:, 0] * 3, x[:, 0]).item() > 60  # scale-invariant
    assert si_snr_db(torch.randn(1, 16000), x[:, 0]).item() < 0


def test_train_export_reload(tmp_path):
    from cadenza.codec.export import export_codec, load_codec_dir
    from cadenza.codec.train import CodecTrainConfig, train_codec

    data = tmp_path / "audio"
    (data / "clips").mkdir(parents=True)
    lines = []
    for i, split in enumerate(["train"] * 3 + ["validation", "test"]):
        t = np.arange(32000) / 16000
        tone = (0.3 * np.sin(2 * np.pi * (220 + 50 * i) * t)).astype(np.float32)
        soundfile.write(data / "clips" / f"{i}.flac", tone, 16000)
        lines.append(json.dumps({"id": str(i), "path": f"clips/{i}.flac", "caption": "a tone", "seconds": 2.0,
                                 "sample_rate": 16000, "split": split, "instruments": [("sine", "flute")[i % 2]], "programs": [0],
                                 "style": "x", "key": "A major", "tempo_bpm": 120.0, "time_signature": "4/4",
                                 "work": "w", "collection": "x", "transpose": 0, "license": "pd", "solo": True}))
    (data / "clips.jsonl").write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    config = CodecTrainConfig(data_dir=str(data), run_dir=str(run), max_steps=3, batch=2, crop_s=0.5, threads=1,
                              log_every=1, save_every=2, waveform_warmup=2)
    train_codec(config, TINY, log=lambda *_: None)
    assert (run / "state.pt").exists() and len((run / "log.jsonl").read_text().splitlines()) >= 3
    train_codec(CodecTrainConfig(**{**config.__dict__, "max_steps": 4}), TINY, log=lambda *_: None)  # resumes
    steps = [json.loads(line).get("step") for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(steps) == 4
    out = export_codec(run, data, tmp_path / "export")
    info = json.loads((out / "codec.json").read_text())
    assert info["metrics"]["steps"] == 4 and "si_snr_db" in info["metrics"]
    probe = info["metrics"]["extra"]  # the instrument probe on the test clip, real and through the codec
    assert {"probe_accuracy_real", "probe_accuracy_codec", "probe_accuracy_latent"} <= set(probe)
    assert all(0.0 <= probe[k] <= 1.0 for k in ("probe_accuracy_real", "probe_accuracy_codec", "probe_accuracy_latent"))
    model = load_codec_dir(out)
    with pytest.raises(CheckpointError):
        load_codec(out / "codec.json", TINY)
    assert model.encode(torch.zeros(1, 1, 8000))[0].shape == (1, 2, 25)


def test_the_inference_codec_is_the_training_model_minus_audiocraft(tmp_path):
    """load_codec builds `Codec` (SEANet + RVQ only, no audiocraft package import): the same state dict
    and exactly the same codes and audio as audiocraft's EncodecModel with those weights."""
    from safetensors.torch import save_file

    from cadenza.codec.model import Codec, codec_state_dict

    torch.manual_seed(0)
    trained = build_codec(TINY).eval()
    save_file(codec_state_dict(trained), str(tmp_path / "codec.safetensors"))
    loaded = load_codec(tmp_path / "codec.safetensors", TINY.to_dict())
    assert isinstance(loaded, Codec) and loaded.state_dict().keys() == trained.state_dict().keys()
    assert (loaded.num_codebooks, loaded.cardinality, loaded.frame_rate) == (2, 16, 50)
    wav = torch.randn(1, 1, 8000) * 0.2
    with torch.inference_mode():
        codes, _ = trained.encode(wav)
        assert torch.equal(loaded.encode(wav)[0], codes)
        assert torch.equal(loaded.decode(codes, None), trained.decode(codes, None))
