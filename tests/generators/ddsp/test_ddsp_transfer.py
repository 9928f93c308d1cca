"""Timbre transfer through the Studio and the CLI on a tiny random instrument: any sample rate, silence,
chunked long input, options, refusals, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cadenza.app.cli import main
from cadenza.conditioning import Conditioning, Sampling
from cadenza.errors import InvalidConditioning, UnsupportedConditioning
from cadenza.generators.ddsp.features import HOP, Features, default_tracker, fill_unvoiced
from cadenza.generators.ddsp.transfer import (TransferOptions, autotune, chunked_features, decode, map_controls,
                                              transfer_audio)
from cadenza.fileio.audio import read_audio, write_audio

from ddsp_fixtures import TINY_NAME, sung_tone


def test_transfer_through_the_studio(studio, voice_wav, tmp_path):
    out = studio.transfer(voice_wav, "tiny", sampling=Sampling(seed=7))
    source, sr = read_audio(voice_wav)
    assert out.sample_rate == 16000
    assert out.samples.shape == (1, round(source.shape[1] * 16000 / sr))
    assert np.isfinite(out.samples).all() and np.abs(out.samples).max() <= 1.0
    assert out.provenance.seed == 7 and out.provenance.family == "ddsp"
    assert 0.3 < out.provenance.notes["voiced_fraction"] < 0.8
    again = studio.transfer(voice_wav, TINY_NAME, sampling=Sampling(seed=7))
    assert np.array_equal(out.samples, again.samples)  # same seed, same output
    path = out.save(tmp_path / "tiny.wav")
    assert json.loads(path.with_name("tiny.wav.json").read_text())["notes"]["transfer_options"]["quiet_db"] == 20.0


def test_transfer_options_as_keywords(studio, voice_wav):
    out = studio.transfer(voice_wav, "tiny", sampling=Sampling(seed=7), quiet_db=35.0, pitch_shift=2)
    assert out.provenance.notes["transfer_options"]["quiet_db"] == 35.0
    same = studio.transfer(voice_wav, "tiny", options=TransferOptions(quiet_db=35.0, pitch_shift=2),
                           sampling=Sampling(seed=7))
    assert np.array_equal(out.samples, same.samples)
    with pytest.raises(UnsupportedConditioning, match="no option warmth; their options are: .*pitch_shift"):
        studio.transfer(voice_wav, "tiny", warmth=1.0)
    with pytest.raises(UnsupportedConditioning, match="not both"):
        studio.transfer(voice_wav, "tiny", options=TransferOptions(), pitch_shift=1)
    with pytest.raises(InvalidConditioning, match="pitch_shift"):
        studio.transfer(voice_wav, "tiny", pitch_shift=99)


def test_generate_with_source_audio_and_num_samples(studio, voice_wav):
    outs = studio.generate(TINY_NAME, Conditioning(source_audio=str(voice_wav)), Sampling(num_samples=2))
    assert len(outs) == 2 and outs[0].provenance.seed != outs[1].provenance.seed
    with pytest.raises(UnsupportedConditioning):
        studio.generate(TINY_NAME, Conditioning(source_audio=str(voice_wav), tempo_bpm=100))
    with pytest.raises(UnsupportedConditioning):
        studio.transfer(voice_wav, TINY_NAME, sampling=Sampling(temperature=0.5))
    with pytest.raises(InvalidConditioning):
        studio.generate(TINY_NAME, Conditioning())


def test_silence_gives_silence(studio, tmp_path):
    path = tmp_path / "silence.wav"
    write_audio(path, np.zeros((2, 44100), dtype=np.float32), 44100)
    out = studio.transfer(path, TINY_NAME, sampling=Sampling(seed=0))
    assert out.provenance.notes["voiced_fraction"] == 0.0
    assert np.abs(out.samples).max() < 1e-3


def test_options_are_validated_and_applied(model_root):
    with pytest.raises(InvalidConditioning):
        TransferOptions(pitch_shift=100)
    with pytest.raises(InvalidConditioning):
        TransferOptions(autotune_key="H major")
    assert TransferOptions(autotune_key="d major").autotune_key == "D major"
    f0 = np.full(50, 220.0, dtype=np.float32)
    feats = Features(f0, np.r_[np.ones(40), np.zeros(10)].astype(np.float32), np.full(50, -30.0, dtype=np.float32))
    from cadenza.checkpoints import read_manifest
    from cadenza.generators.ddsp.export import load_instrument

    instrument = load_instrument(read_manifest(model_root / TINY_NAME))
    plain = map_controls(feats, instrument, TransferOptions(auto_adjust=False))
    shifted = map_controls(feats, instrument, TransferOptions(auto_adjust=False, pitch_shift=12, loudness_shift=-6))
    assert np.allclose(shifted.f0_hz, 2 * plain.f0_hz)
    assert np.allclose(shifted.loudness_db, plain.loudness_db - 6)
    assert plain.loudness_db[45] == pytest.approx(-50.0)  # unvoiced frames 20 dB quieter
    auto = map_controls(feats, instrument, TransferOptions())
    assert auto.octave_shift == 1  # 220 Hz (A3) moves toward the instrument's A4
    assert autotune(np.array([60.4, 62.6]), "C major", 1.0).tolist() == [60.0, 62.0]
    assert autotune(np.array([61.0]), "C major", 0.5)[0] in (60.5, 61.5)


def test_long_input_in_chunks_matches_one_pass(model_root):
    from cadenza.checkpoints import read_manifest
    from cadenza.generators.ddsp.export import load_instrument

    instrument = load_instrument(read_manifest(model_root / TINY_NAME))
    rng = np.random.default_rng(0)
    f0 = (200 + 50 * rng.random(430)).astype(np.float32)
    ld = (-40 + 10 * rng.random(430)).astype(np.float32)
    whole = decode(instrument, f0, ld, seed=1, chunk_frames=1000)
    chunked = decode(instrument, f0, ld, seed=1, chunk_frames=64)
    assert whole.shape == (430 * HOP,)
    assert np.allclose(whole, chunked, atol=1e-5)
    audio = sung_tone(16000, seconds=4.0)
    one = chunked_features(audio, default_tracker(), 10_000)
    many = chunked_features(audio, default_tracker(), 150)
    assert len(one) == len(many) == audio.shape[0] // HOP + 1
    assert np.allclose(one.loudness_db, many.loudness_db, atol=1e-3)
    voiced = (one.confidence > 0.5) & (many.confidence > 0.5)
    assert np.median(np.abs(1200 * np.log2(one.f0_hz[voiced] / many.f0_hz[voiced]))) < 5
    out, _ = transfer_audio(instrument, audio, 16000, default_tracker(), TransferOptions(chunk_s=1.0), seed=2)
    assert out.shape == audio.shape


def test_pitch_tracker_finds_the_tone():
    audio = sung_tone(16000, seconds=3.0, silence_s=0.5, hz=220.0)
    f0, confidence = default_tracker().track(audio)
    voiced = confidence > 0.5
    assert 0.5 < voiced.mean() < 0.8
    t = np.arange(len(f0)) * HOP / 16000
    truth = 220.0 * 2 ** ((7 * t / 3.0 + 0.3 * np.sin(2 * np.pi * 5 * t)) / 12)
    assert np.median(np.abs(1200 * np.log2(f0[voiced] / truth[voiced]))) < 20
    assert fill_unvoiced(np.array([0, 100, 0, 400, 0], dtype=np.float32)).tolist() == pytest.approx([100, 100, 200, 400, 400])


def test_cli_transfer(model_root, voice_wav, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CADENZA_MODELS", str(model_root))
    out = tmp_path / "out.flac"
    assert main(["transfer", str(voice_wav), "--instrument", "tiny", "-o", str(out), "--pitch-shift", "-2",
                 "--autotune", "A minor", "--seed", "3"]) == 0
    assert "octave shift" in capsys.readouterr().out
    meta = json.loads(out.with_name("out.flac.json").read_text())
    assert meta["seed"] == 3 and meta["notes"]["transfer_options"]["autotune_key"] == "A minor"
    assert main(["transfer", str(voice_wav), "--instrument", "tiny", "-o", str(out), "--pitch-shift", "99"]) == 2


def test_a_model_at_another_frame_rate(tmp_path, voice_wav):
    """Models converted from Magenta run at 250 frames/s (hop 64): features are interpolated to it."""
    from dataclasses import replace

    from ddsp_fixtures import TINY_CONFIG, build_tiny_instrument
    from cadenza.studio import Studio

    build_tiny_instrument(tmp_path / "ddsp-fast", name="ddsp-fast", config=replace(TINY_CONFIG, hop=64, reverb_s=0.05))
    studio = Studio(model_dirs=[tmp_path])
    out = studio.transfer(voice_wav, "fast", sampling=Sampling(seed=0))
    source, sr = read_audio(voice_wav)
    assert out.samples.shape == (1, round(source.shape[1] * 16000 / sr))
    assert np.isfinite(out.samples).all()
