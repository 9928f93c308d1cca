"""CodecLMGenerator on tiny random MusicGen releases: shapes, lengths, seeds, melody, prompt, stereo,
sliding extension, progress/cancel, and clear errors for bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_musicgen import SAMPLE_RATE, write_tone

from cadenza import Conditioning, Sampling
from cadenza.errors import Cancelled, CheckpointError, InvalidConditioning, UnsupportedConditioning
from cadenza.generators.base import Callbacks
from cadenza.generators.codec_lm.generator import CodecLMGenerator, Window, plan_windows, resolve_sampling
from cadenza.generators.codec_lm.release_dir import spec_for_release
from cadenza.studio import Studio


@pytest.fixture(scope="module")
def generators(release_dirs) -> dict[str, CodecLMGenerator]:
    return {kind: CodecLMGenerator.from_checkpoint(spec_for_release(path, name=f"tiny-{kind}"))
            for kind, path in release_dirs.items()}


def test_bare_release_dir_generates_through_studio(release_dirs):
    studio = Studio(model_dirs=[])
    outs = studio.generate(str(release_dirs["mono"]), Conditioning(text="calm piano", duration_s=2.0), Sampling(seed=3))
    assert len(outs) == 1
    out = outs[0]
    assert out.sample_rate == SAMPLE_RATE and out.samples.shape == (1, 2 * SAMPLE_RATE)
    assert out.samples.dtype == np.float32 and np.isfinite(out.samples).all()
    prov = out.provenance
    assert prov.family == "codec_lm" and prov.seed == 3 and len(prov.checkpoint_sha256) == 64
    assert prov.notes["sampling_used"] == {"temperature": 1.0, "top_k": 250, "top_p": 1.0, "cfg_scale": 3.0}


def test_seeds_and_num_samples(generators):
    gen = generators["mono"]
    cond = Conditioning(text="folk", duration_s=0.5)
    a = gen.generate(cond, Sampling(seed=7, num_samples=2))
    b = gen.generate(cond, Sampling(seed=7, num_samples=2))
    c = gen.generate(cond, Sampling(seed=8, num_samples=2))
    assert [o.provenance.sample_index for o in a] == [0, 1]
    assert all(np.array_equal(x.samples, y.samples) for x, y in zip(a, b))
    assert not np.array_equal(a[0].samples, c[0].samples)
    drawn = gen.generate(cond, Sampling())
    assert isinstance(drawn[0].provenance.seed, int)


def test_explicit_sampling_overrides_defaults():
    defaults = {"temperature": 1.0, "top_k": 250, "top_p": 1.0, "cfg_scale": 3.0}
    assert resolve_sampling(Sampling(), defaults) == defaults
    assert resolve_sampling(Sampling(top_p=0.9, cfg_scale=5.0), defaults) == {
        "temperature": 1.0, "top_k": 0, "top_p": 0.9, "cfg_scale": 5.0}
    assert resolve_sampling(Sampling(top_k=20), defaults)["top_k"] == 20


def test_sliding_extension_plan_is_exact():
    windows = plan_windows(0, 165, 100, 40)
    assert windows[0] == Window(0, 0, 100)
    assert all(w.context == 40 for w in windows[1:])
    assert sum(w.new for w in windows) == 165
    assert all(w.context + w.new <= 100 for w in windows)
    prompted = plan_windows(30, 80, 100, 40)
    assert prompted == [Window(0, 30, 50)]
    with pytest.raises(InvalidConditioning):
        plan_windows(80, 80, 100, 40)


def test_duration_beyond_the_window_slides(generators):
    out = generators["mono"].generate(Conditioning(text="rock", duration_s=3.3), Sampling(seed=0))[0]
    assert out.samples.shape[-1] == round(3.3 * SAMPLE_RATE)
    windows = out.provenance.notes["windows"]
    assert len(windows) >= 2 and windows[1]["context_s"] > 0
    assert out.provenance.notes["frames"] == 165


def test_prompt_continuation_keeps_prompt_codes(generators, tmp_path):
    gen = generators["mono"]
    clip = write_tone(tmp_path / "clip.wav", 330.0, seconds=0.6, sample_rate=16000, channels=2)  # resampled, mixed
    out = gen.generate(Conditioning(prompt=str(clip), duration_s=1.5), Sampling(seed=1))[0]
    assert out.samples.shape == (1, int(1.5 * SAMPLE_RATE))
    assert out.provenance.notes["prompt_s"] == 0.6
    assert out.provenance.notes["windows"][0]["context_s"] == 0.6


def test_stereo_model_outputs_two_channels(generators, tmp_path):
    gen = generators["stereo"]
    assert gen.bundle.lm.config.delays == (0, 0, 1, 1, 2, 2, 3, 3)
    out = gen.generate(Conditioning(text="wide", duration_s=1.0), Sampling(seed=0))[0]
    assert out.samples.shape == (2, SAMPLE_RATE)
    clip = write_tone(tmp_path / "mono.wav", seconds=0.4)
    out = gen.generate(Conditioning(prompt=str(clip), duration_s=1.0), Sampling(seed=0))[0]
    assert out.samples.shape == (2, SAMPLE_RATE)


def test_melody_from_audio_and_midi(generators, tmp_path, midi_file):
    gen = generators["melody"]
    tone = write_tone(tmp_path / "tune.wav", 440.0, seconds=1.0)
    tune = midi_file("tune.mid", notes=[(i * 240, 240, 69 + (i % 3), 90) for i in range(8)], qpm=120)
    for melody in (tone, tune):
        out = gen.generate(Conditioning(text="strings", melody=str(melody), duration_s=1.0), Sampling(seed=0))[0]
        assert out.samples.shape == (1, SAMPLE_RATE)
        assert "melody_chroma" in out.provenance.notes
    with pytest.raises(UnsupportedConditioning, match="melody"):
        generators["mono"].generate(Conditioning(melody=str(tone), duration_s=1.0), Sampling())


def test_progress_and_cancel(generators):
    seen = []
    gen = generators["mono"]
    gen.generate(Conditioning(text="x", duration_s=0.4), Sampling(seed=0),
                 Callbacks(progress=lambda done, total: seen.append((done, total))))
    assert seen[-1][0] == seen[-1][1] == 20 + 3 and [d for d, _ in seen] == list(range(1, 24))
    calls = []
    with pytest.raises(Cancelled):
        gen.generate(Conditioning(text="x", duration_s=1.0), Sampling(seed=0),
                     Callbacks(should_cancel=lambda: calls.append(1) or len(calls) > 5))


def test_bad_inputs_raise_clear_errors(generators, tmp_path, release_dirs):
    gen = generators["mono"]
    with pytest.raises(InvalidConditioning, match="duration"):
        Conditioning(duration_s=0)
    with pytest.raises(InvalidConditioning, match="no such file"):
        Conditioning(prompt=str(tmp_path / "missing.wav"))
    low = write_tone(tmp_path / "low.wav", 200.0, seconds=0.5, sample_rate=2000)
    with pytest.raises(InvalidConditioning, match="sample rate 2000 Hz"):
        gen.generate(Conditioning(prompt=str(low), duration_s=1.0), Sampling())
    long_clip = write_tone(tmp_path / "long.wav", seconds=1.0)
    with pytest.raises(InvalidConditioning, match="includes the prompt"):
        gen.generate(Conditioning(prompt=str(long_clip), duration_s=0.8), Sampling())
    blip = write_tone(tmp_path / "blip.wav", seconds=0.005)
    with pytest.raises(InvalidConditioning, match="shorter than one codec frame"):
        gen.generate(Conditioning(prompt=str(blip), duration_s=0.8), Sampling())
    with pytest.raises(CheckpointError, match="no model named"):
        Studio(model_dirs=[]).spec(str(tmp_path / "not-a-model"))


def test_missing_t5_is_named(tmp_path, release_dirs, monkeypatch):
    """A T5-conditioned release without T5 files on the machine fails with what is missing."""
    import shutil

    from omegaconf import OmegaConf

    import huggingface_hub
    from cadenza.generators.codec_lm.audiocraft_load import load_release_pickle

    directory = tmp_path / "t5-musicgen"
    shutil.copytree(release_dirs["mono"], directory)
    pkg = load_release_pickle(directory / "state_dict.bin")
    cfg = OmegaConf.create(pkg["xp.cfg"])
    cfg.conditioners = {"description": {"model": "t5", "t5": {"name": "t5-base", "finetune": False}}}
    state = {k: v for k, v in pkg["best_state"].items() if not k.startswith("condition_provider.")}
    state["condition_provider.conditioners.description.output_proj.weight"] = torch.zeros(32, 768)
    state["condition_provider.conditioners.description.output_proj.bias"] = torch.zeros(32)
    torch.save({**pkg, "best_state": state, "xp.cfg": OmegaConf.to_yaml(cfg)}, directory / "state_dict.bin")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(CheckpointError, match="T5 encoder 't5-base'.*not on this machine"):
        CodecLMGenerator.from_checkpoint(spec_for_release(directory))


def test_altered_file_is_refused(tmp_path, release_dirs):
    import shutil

    from cadenza.checkpoints import write_manifest

    directory = tmp_path / "pinned"
    shutil.copytree(release_dirs["mono"], directory)
    spec = write_manifest(directory, name="pinned", family="codec_lm",
                          files={"state_dict": "state_dict.bin", "compression_state_dict": "compression_state_dict.bin"},
                          config={"format": "audiocraft"}, capabilities=[], license="test")
    with open(directory / "compression_state_dict.bin", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CheckpointError, match="sha256"):
        CodecLMGenerator.from_checkpoint(spec)
