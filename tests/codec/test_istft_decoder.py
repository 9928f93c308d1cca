"""The frame-rate inverse-STFT decoder and the decoder-only training of an exported codec."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cadenza.codec.istft_decoder import ISTFTDecoder, ISTFTDecoderConfig
from cadenza.codec.model import CodecConfig, build_codec, codec_state_dict, load_codec
from cadenza.errors import CheckpointError

SMALL = dict(sample_rate=8000, n_filters=4, ratios=(5, 4, 4, 2), dimension=16, lstm=0, n_q=2, bins=16)


def test_decoder_makes_exactly_hop_samples_per_frame():
    decoder = ISTFTDecoder(ISTFTDecoderConfig(dimension=8, hop=40, dim=16, layers=2))
    wav = decoder(torch.randn(3, 8, 25))
    assert wav.shape == (3, 1, 1000) and torch.isfinite(wav).all()


def test_config_keeps_old_codecs_identical_and_validates():
    seanet = CodecConfig(**SMALL)
    assert "decoder" not in seanet.to_dict()  # configs of the shipped SEANet codecs do not change
    istft = CodecConfig(**SMALL, decoder="istft", decoder_dim=16, decoder_layers=1)
    assert CodecConfig.from_dict(istft.to_dict()) == istft
    with pytest.raises(CheckpointError, match="unknown decoder"):
        CodecConfig(**SMALL, decoder="wavenet")


def test_an_istft_codec_saves_and_loads_through_safetensors(tmp_path):
    config = CodecConfig(**SMALL, decoder="istft", decoder_dim=16, decoder_layers=1)
    torch.manual_seed(0)
    model = build_codec(config).eval()
    save_file(codec_state_dict(model), tmp_path / "codec.safetensors")
    loaded = load_codec(tmp_path / "codec.safetensors", config)
    x = torch.randn(1, 1, 1600)
    with torch.no_grad():
        assert torch.equal(model.decoder(model.encoder(x)), loaded.decoder(loaded.encoder(x)))
        assert model.decode(model.encode(x)[0]).shape == (1, 1, 1600)


def test_decoder_training_keeps_the_encoder_and_quantizer(tmp_path):
    """Two steps of `train_decoder` (one adversarial) on a tiny exported codec: only the decoder moves."""
    import soundfile

    from cadenza.codec.decoder_train import DecoderTrainConfig, train_decoder
    from cadenza.data.audio_corpus import ClipRecord

    source = tmp_path / "codec"
    source.mkdir()
    config = CodecConfig(**SMALL)
    torch.manual_seed(0)
    model = build_codec(config)
    for layer in model.quantizer.vq.layers:
        layer._codebook.embed.normal_()
        layer._codebook.inited.fill_(1)
    save_file(codec_state_dict(model), source / "codec.safetensors")
    (source / "codec.json").write_text(json.dumps({"config": config.to_dict(), "metrics": {}, "made_by": {}}))
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, split in enumerate(["train", "train", "validation"]):
        t = np.arange(16000) / 8000
        soundfile.write(data / f"clips/{i}.flac", (0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)
                                                    + 0.01 * rng.standard_normal(16000)).astype(np.float32), 8000)
        lines.append(ClipRecord(id=str(i), path=f"clips/{i}.flac", caption="x", seconds=2.0, sample_rate=8000,
                                split=split, instruments=("flute",), programs=(73,), style="s", key="C major",
                                tempo_bpm=100.0, time_signature="4/4", work="w", collection="c", transpose=0,
                                license="l").to_json())
    (data / "clips.jsonl").write_text("\n".join(lines) + "\n")
    run = train_decoder(DecoderTrainConfig(data_dir=str(data), codec_dir=str(source), run_dir=str(tmp_path / "run"),
                                           max_steps=2, batch=2, crop_s=0.5, adversarial_from=1, waveform_warmup=0,
                                           decoder_dim=16, decoder_layers=1, eval_every=2, save_every=2,
                                           weight_flux=0.5, log_every=1),
                        log=lambda *_: None)
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 2 and "disc" in state
    before = codec_state_dict(model)
    for name, value in state["model"].items():
        if not name.startswith("decoder."):
            assert torch.equal(value, before[name]), name
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("validation" in entry for entry in log)
    assert all(entry["flux"] > 0 for entry in log if "flux" in entry) and any("flux" in entry for entry in log)


def test_onset_flux_loss_hears_a_softened_attack():
    from cadenza.codec.train import OnsetFluxLoss

    loss = OnsetFluxLoss(16000)
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t) * (t >= 0.5)  # a note that starts at 0.5 s
    soft = torch.sin(2 * torch.pi * 440 * t) * ((t - 0.4) / 0.2).clamp(0, 1)  # the same note faded in over 200 ms
    sharp, softened = tone.view(1, 1, -1), soft.view(1, 1, -1)
    assert loss(sharp, sharp) == 0
    assert loss(softened, sharp) > 0.05
    assert loss.envelope(sharp).max() > 1.2 * loss.envelope(softened).max()  # the onset is a peak, not a ramp
