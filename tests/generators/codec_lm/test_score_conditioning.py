"""The codec LM reads a frame-aligned score: zero-initialised it changes nothing, the cached decode sees
the same score rows as training, and our format performs a MIDI melody (and refuses what it cannot)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cadenza import Conditioning, Sampling
from cadenza.checkpoints import write_manifest
from cadenza.codec.model import CodecConfig, build_codec, codec_state_dict
from cadenza.conditioning import Capability
from cadenza.errors import InvalidConditioning, UnsupportedConditioning
from cadenza.generators.codec_lm.generator import CodecLMGenerator
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig, CodecLMRunner, init_weights
from cadenza.generators.codec_lm.lm_train import load_initial_weights
from cadenza.music.score_roll import SCORE_DIM, score_roll

NOTES = np.array([[0.0, 0.4, 60], [0.4, 0.8, 64], [0.8, 1.2, 67]])


def tiny(score_dim: int | None, seed: int = 0) -> CodecLM:
    torch.manual_seed(seed)
    lm = CodecLM(CodecLMConfig(n_q=3, card=11, dim=16, num_heads=2, num_layers=2, ffn_dim=32, cond_dim=6,
                               max_seq_len=64, score_dim=score_dim))
    init_weights(lm, std=0.3)
    return lm.eval()


def test_a_zero_score_projection_keeps_the_text_only_model(tmp_path):
    text_only = tiny(None)
    save_file({k: v.contiguous() for k, v in text_only.state_dict().items()}, tmp_path / "lm.safetensors")
    scored = tiny(SCORE_DIM, seed=5)
    load_initial_weights(scored, str(tmp_path))
    codes = torch.randint(0, 11, (2, 3, 8))
    states, mask = torch.randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool)
    score = torch.from_numpy(np.stack([score_roll(NOTES, 8, 10.0)] * 2))
    expected = text_only.forward_train(codes, states, mask)
    assert torch.allclose(scored.forward_train(codes, states, mask, score=score), expected, atol=1e-6)
    with torch.no_grad():
        scored.score_proj.weight.normal_()
    assert not torch.allclose(scored.forward_train(codes, states, mask, score=score), expected, atol=1e-4)
    # no score at all (zero rows) still equals the text-only model: the projection of "none" is zero
    assert torch.allclose(scored.forward_train(codes, states, mask, score=torch.zeros_like(score)), expected, atol=1e-6)


def test_init_from_refuses_weights_of_another_shape(tmp_path):
    from cadenza.errors import CheckpointError

    save_file({"emb.0.weight": torch.zeros(3, 3)}, tmp_path / "lm.safetensors")
    with pytest.raises((CheckpointError, RuntimeError)):
        load_initial_weights(tiny(SCORE_DIM), str(tmp_path))
    with pytest.raises(CheckpointError, match="no lm.safetensors"):
        load_initial_weights(tiny(SCORE_DIM), str(tmp_path / "missing"))


def test_cached_steps_read_the_same_score_as_training():
    lm = tiny(SCORE_DIM)
    with torch.no_grad():
        lm.score_proj.weight.normal_()
    codes = torch.randint(0, 11, (1, 3, 6))
    states, mask = torch.randn(1, 4, 6), torch.ones(1, 4, dtype=torch.bool)
    score = torch.from_numpy(score_roll(NOTES, 6, 5.0))[None]
    inputs = lm.pattern_inputs(codes)
    full = lm(inputs, cross=lm.project_conditioning(states, mask), score=lm.score_inputs(score, inputs.shape[-1]))
    steps = lm.score_inputs(score, inputs.shape[-1] + 4)
    runner = CodecLMRunner(lm, cross=lm.project_conditioning(states, mask), score=steps)
    runner.setup_cache(1, 32)
    stepped = [runner(inputs[..., :3], torch.arange(3))]
    for t in range(3, inputs.shape[-1]):
        stepped.append(runner(inputs[..., t:t + 1], torch.tensor([t])))
    runner.clear_cache()
    assert torch.allclose(torch.cat(stepped, dim=2), full, atol=1e-5)


def write_checkpoint(directory, score_dim: int | None):
    directory.mkdir(parents=True, exist_ok=True)
    codec_config = CodecConfig(sample_rate=8000, n_filters=4, ratios=(5, 4, 4, 2), dimension=16, lstm=0, n_q=4, bins=32,
                               decoder="istft", decoder_dim=16, decoder_layers=1)
    torch.manual_seed(0)
    codec = build_codec(codec_config)
    for layer in codec.quantizer.vq.layers:  # a random codebook (an untrained one is all zeros until k-means)
        layer._codebook.embed.normal_()
        layer._codebook.inited.fill_(1)
    lm_config = CodecLMConfig(n_q=4, card=32, dim=32, num_heads=4, num_layers=2, ffn_dim=64, cond_dim=384,
                              max_seq_len=128, score_dim=score_dim)
    lm = CodecLM(lm_config)
    init_weights(lm, std=0.2)
    if score_dim:  # a score strong enough to change what a random model samples
        torch.nn.init.normal_(lm.score_proj.weight, std=3.0)
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, directory / "lm.safetensors")
    save_file(codec_state_dict(codec), directory / "codec.safetensors")
    capabilities = [Capability.TEXT, Capability.DURATION, Capability.PROMPT_AUDIO]
    return write_manifest(directory, name="tiny-score-lm", family="codec_lm",
                          files={"lm": "lm.safetensors", "codec": "codec.safetensors"},
                          config={"format": "cadenza", "lm": lm_config.to_dict(), "codec": codec_config.to_dict(),
                                  "text_encoder": "minilm", "window_s": 1.0},
                          capabilities=capabilities + ([Capability.MELODY_MIDI] if score_dim else []), license="test")


def test_our_format_performs_a_midi_melody(tmp_path, midi_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = CodecLMGenerator.from_checkpoint(write_checkpoint(tmp_path / "m", SCORE_DIM))
    tune = midi_file("tune.mid", notes=[(0, 480, 60, 90), (480, 480, 64, 90), (960, 960, 67, 90)], qpm=120)
    out = gen.generate(Conditioning(text="a flute", melody=str(tune)), Sampling(seed=1))[0]
    # the last note ends at 2 s (120 BPM), then the 0.5 s tail; longer than one 1 s window: slides
    assert out.samples.shape == (1, int(round(2.5 * 8000)))
    assert out.provenance.notes["score"]["notes"] == 3
    assert len(out.provenance.notes["windows"]) >= 2
    again = gen.generate(Conditioning(text="a flute", melody=str(tune)), Sampling(seed=1))[0]
    assert np.array_equal(out.samples, again.samples)
    silent_score = gen.generate(Conditioning(text="a flute", duration_s=2.5), Sampling(seed=1))[0]
    assert not np.array_equal(out.samples, silent_score.samples)


def test_a_score_model_refuses_an_audio_melody_and_a_text_only_model_any(tmp_path, monkeypatch):
    import soundfile

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wav = tmp_path / "hum.wav"
    soundfile.write(wav, np.zeros(8000, dtype=np.float32), 8000)
    gen = CodecLMGenerator.from_checkpoint(write_checkpoint(tmp_path / "m", SCORE_DIM))
    with pytest.raises((InvalidConditioning, UnsupportedConditioning)):
        gen.generate(Conditioning(text="x", melody=str(wav), duration_s=1.0), Sampling(seed=0))
    plain = CodecLMGenerator.from_checkpoint(write_checkpoint(tmp_path / "p", None))
    tune = tmp_path / "t.mid"
    import symusic

    score = symusic.Score(480)
    track = symusic.Track()
    track.notes.append(symusic.Note(0, 480, 60, 90))
    score.tracks.append(track)
    score.dump_midi(str(tune))
    with pytest.raises(UnsupportedConditioning, match="melody"):
        plain.generate(Conditioning(text="x", melody=str(tune)), Sampling(seed=0))


def test_a_melody_is_performed_from_its_sketchs_coarse_codes(tmp_path, midi_file, monkeypatch):
    """Default strength 0.3: the first three of four codebooks come from the sketch (the melody rendered on the
    text's instrument, encoded by the model's codec); 0.5: two; 0.75: one; strength 1: the model's own."""
    from cadenza.data.sketch import SKETCH_ACCENT_DB, sketch_melody

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gen = CodecLMGenerator.from_checkpoint(write_checkpoint(tmp_path / "m", SCORE_DIM))
    tune = str(midi_file("tune.mid", notes=[(0, 480, 72, 90), (480, 480, 76, 90), (960, 960, 79, 90)], qpm=120))
    request = Conditioning(text="a solo flute", melody=tune)
    frames = int(2.5 * gen.frame_rate)
    fixed, note = gen._sketch_codes(request, Sampling(seed=0), NOTES, frames, torch.device("cpu"))
    audio, instrument = sketch_melody(tune, "a solo flute", gen.sample_rate, frames / gen.frame_rate)
    codes, _ = gen.bundle.codec.encode(torch.from_numpy(audio)[None, None])
    assert note == {"instrument": "flute", "strength": 0.3, "codebooks_given": 3, "accent_db": SKETCH_ACCENT_DB}
    assert instrument == "flute"
    assert torch.equal(fixed[0, :3], codes[0, :3, :frames]) and (fixed[0, 3:] == -1).all()
    two, note = gen._sketch_codes(request, Sampling(seed=0, strength=0.5), NOTES, frames, torch.device("cpu"))
    assert note["codebooks_given"] == 2 and torch.equal(two[0, :2], codes[0, :2, :frames]) and (two[0, 2:] == -1).all()
    one, note = gen._sketch_codes(request, Sampling(seed=0, strength=0.75), NOTES, frames, torch.device("cpu"))
    assert note["codebooks_given"] == 1 and torch.equal(one[0, 0], codes[0, 0, :frames]) and (one[0, 1:] == -1).all()
    assert gen._sketch_codes(request, Sampling(seed=0, strength=1.0), NOTES, frames, torch.device("cpu")) == (None, None)

    sketched = gen.generate(request, Sampling(seed=1))[0]
    assert sketched.provenance.notes["sketch"]["codebooks_given"] == 3
    own = gen.generate(request, Sampling(seed=1, strength=1.0))[0]
    assert "sketch" not in own.provenance.notes and not np.array_equal(sketched.samples, own.samples)
    with pytest.raises(InvalidConditioning, match="strength applies to a melody"):
        gen.generate(Conditioning(text="a flute", duration_s=1.0), Sampling(seed=0, strength=0.5))
