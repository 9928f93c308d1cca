"""The diffusion generator on tiny random AudioLDM2 / Stable Audio folders: API, CLI, every knob, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from cadenza import Conditioning, Sampling, Studio
from cadenza.errors import CheckpointError, InvalidConditioning, UnsupportedConditioning
from cadenza.generators.diffusion.generator import DiffusionGenerator
from cadenza.generators.diffusion.pipeline_dir import spec_for_folder, write_pipeline_manifest
from cadenza.generators.diffusion.sampler import Batch, Settings, sample

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning",
                                        "ignore::UserWarning", "ignore::FutureWarning")

RATES = {"audioldm2": (16000, 1), "stable_audio": (8000, 2)}


@pytest.fixture(scope="module")
def generators(pipeline_dirs, loaded):
    """Generators over the already-loaded tiny pipelines (loading itself is tested through Studio below)."""
    from cadenza.generators.diffusion.audioldm2 import AudioLDM2Backend
    from cadenza.generators.diffusion.stable_audio import StableAudioBackend

    return {"audioldm2": DiffusionGenerator(spec_for_folder(pipeline_dirs["audioldm2"]), AudioLDM2Backend(loaded["audioldm2"])),
            "stable_audio": DiffusionGenerator(spec_for_folder(pipeline_dirs["stable_audio"]),
                                               StableAudioBackend(loaded["stable_audio"]))}


def wav_file(path, seconds=0.3, rate=22050, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([tone] * channels, axis=1).astype(np.float32), rate)
    return str(path)


def run(gen, steps=3, **kwargs):
    sampling = {k: kwargs.pop(k) for k in list(kwargs) if k in ("seed", "cfg_scale", "scheduler", "strength", "num_samples")}
    sampling.setdefault("seed", 0)
    conditioning = Conditioning(**{"text": "a calm solo piano piece", "duration_s": 0.2, **kwargs})
    return gen.generate(conditioning, Sampling(steps=steps, **sampling))


@pytest.mark.parametrize("name", ["audioldm2", "stable_audio"])
def test_bare_folder_loads_and_generates_through_studio(pipeline_dirs, name):
    studio = Studio(model_dirs=[])
    outs = studio.generate(str(pipeline_dirs[name]), Conditioning(text="drums and bass", duration_s=0.25),
                           Sampling(seed=3, steps=2))
    rate, channels = RATES[name]
    assert len(outs) == 1 and outs[0].sample_rate == rate
    assert outs[0].samples.shape == (channels, int(0.25 * rate)) and outs[0].samples.dtype == np.float32
    prov = outs[0].provenance
    assert prov.seed == 3 and prov.notes["scheduler"] == "dpm++" and prov.notes["steps"] == 2
    assert prov.notes["cfg_scale"] == (3.5 if name == "audioldm2" else 7.0)  # the model's default


def test_manifest_folder_is_listed_verified_and_runs_from_the_cli(pipeline_dirs, tmp_path, monkeypatch):
    import shutil

    from cadenza.app.cli import main

    root = tmp_path / "models"
    shutil.copytree(pipeline_dirs["stable_audio"], root / "tiny-sa" / "pipeline")
    spec = write_pipeline_manifest(root / "tiny-sa", "tiny-sa", license="random test weights",
                                   source={"repo": "none (built in the test)"})
    assert spec.config == {"format": "diffusers", "pipeline": "StableAudioPipeline", "path": "pipeline"}
    assert "model_index" in spec.files
    studio = Studio(model_dirs=[root])
    info = {m.name: m for m in studio.models()}["tiny-sa"]
    assert info.family == "diffusion" and "prompt_audio" in info.capabilities

    monkeypatch.setenv("CADENZA_MODELS", str(root))
    out = tmp_path / "calm.wav"
    assert main(["generate", "tiny-sa", "--text", "a calm solo piano piece", "--duration", "0.3", "--seed", "5",
                 "--steps", "2", "--scheduler", "euler", "--samples", "2", "-o", str(out)]) == 0
    for path in (tmp_path / "calm-1.wav", tmp_path / "calm-2.wav"):
        data, rate = sf.read(path)
        assert rate == 8000 and data.shape == (int(0.3 * 8000), 2)
        sidecar = json.loads(open(f"{path}.json").read())
        assert sidecar["notes"]["scheduler"] == "euler" and "quality" in sidecar["notes"]
    assert main(["generate", str(pipeline_dirs["audioldm2"]), "--duration", "0.2", "--steps", "2",
                 "-o", str(tmp_path / "a.wav")]) == 0
    assert sf.info(str(tmp_path / "a.wav")).samplerate == 16000

    config = root / "tiny-sa" / "pipeline" / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace("500", "400"))
    with pytest.raises(CheckpointError, match="sha256"):
        Studio(model_dirs=[root]).load("tiny-sa")


@pytest.mark.parametrize("name", ["audioldm2", "stable_audio"])
def test_every_knob_changes_the_result(generators, name, tmp_path):
    gen = generators[name]
    base = run(gen)[0].samples
    np.testing.assert_array_equal(base, run(gen)[0].samples)  # same seed, same output
    changed = {
        "seed": run(gen, seed=1), "negative": run(gen, negative_text="low quality, noisy"),
        "cfg": run(gen, cfg_scale=9.0), "steps": run(gen, steps=5),
        "scheduler": run(gen, scheduler="euler"), "text": run(gen, text="birds singing"),
        "init audio": run(gen, prompt=wav_file(tmp_path / "init.wav")),
    }
    for knob, outs in changed.items():
        assert outs[0].samples.shape == base.shape, knob
        # relative: the tiny random AudioLDM2 vocoder outputs ~1e-7 full scale
        assert np.abs(outs[0].samples - base).max() > 1e-3 * np.abs(base).max(), f"{knob} had no effect"


@pytest.mark.parametrize("name", ["audioldm2", "stable_audio"])
def test_candidates_are_distinct_ranked_and_reproducible_alone(generators, name):
    gen = generators[name]
    outs = run(gen, seed=10, num_samples=3)
    assert sorted(o.provenance.seed for o in outs) == [10, 11, 12]
    assert [o.provenance.notes["rank"] for o in outs] == [0, 1, 2]
    ranked_by = "clap" if name == "audioldm2" else "quality"
    assert {o.provenance.notes["ranked_by"] for o in outs} == {ranked_by}
    scores = [o.provenance.notes["clap_score"] if ranked_by == "clap" else o.provenance.notes["quality"]["score"]
              for o in outs]
    assert scores == sorted(scores, reverse=True)
    assert len({o.samples.tobytes() for o in outs}) == 3
    alone = run(gen, seed=outs[1].provenance.seed)[0].samples  # a candidate is re-made from its own seed
    np.testing.assert_allclose(alone, outs[1].samples, rtol=1e-4, atol=1e-4 * np.abs(alone).max())


class FakeBackend:
    """A backend whose 'model' predicts zero noise and whose latent is the audio's mean level (x10), so the
    result shows exactly how much of the init latent survived, row by row."""

    scheduler_kind = "discrete"
    sample_rate, channels, max_duration_s = 100, 1, 10.0

    def __init__(self):
        from diffusers import DDIMScheduler

        from cadenza.generators.diffusion.backend import ModelDefaults

        self.scheduler_config = dict(DDIMScheduler(clip_sample=False).config)
        self.defaults = ModelDefaults(steps=10, cfg_scale=2.0, scheduler="ddim", duration_s=1.0)

    def encode_text(self, prompts, negatives, durations_s, use_cfg):
        from cadenza.generators.diffusion.backend import TextConditions

        cond = torch.tensor([[float(len(p))] for p in prompts])
        return TextConditions(cond, torch.zeros_like(cond) if use_cfg else None)

    def latent_shape(self, duration_s):
        return (2, int(duration_s * self.sample_rate))

    def model_fn(self, scheduler):
        return lambda x, t, cond: torch.zeros_like(x)

    def encode_audio(self, wav, duration_s):
        level = wav.mean(dim=(1, 2)) * 10
        return level[:, None, None].expand(-1, *self.latent_shape(duration_s)).clone()

    def decode(self, latents, duration_s):
        return latents.mean(1, keepdim=True)


def test_init_audio_is_kept_in_proportion_to_strength(tmp_path):
    gen = DiffusionGenerator(spec_for_folder_stub(), FakeBackend())
    prompt = tmp_path / "dc.wav"
    sf.write(prompt, np.full(100, 0.3, np.float32), 100)  # a constant 0.3: latent level 3.0
    error = {}
    for strength in (0.1, 0.5, 0.9):
        out = gen.generate(Conditioning(text="x", prompt=str(prompt)), Sampling(seed=0, strength=strength))[0]
        error[strength] = float(np.abs(out.samples - 3.0).mean())
        assert out.provenance.notes["steps_run"] == int(10 * strength)
    assert error[0.1] < 0.05 < error[0.5] < error[0.9], error
    out = gen.generate(Conditioning(text="x", prompt=str(prompt)), Sampling(seed=0))[0]
    assert out.provenance.notes["strength"] == 0.7 and out.samples.shape == (1, 100)  # default strength; prompt's length


def test_batched_init_audio_stays_with_its_own_prompt():
    backend = FakeBackend()
    levels = [torch.full((1, 100), 0.3), torch.full((2, 100), -0.5)]  # latents +3 and -5; mono and stereo
    settings = Settings(steps=10, cfg_scale=3.0, scheduler="dpm++", duration_s=1.0, strength=0.1)
    out = sample(backend, Batch(["piano", "drums"], [None, None], [[1, 2], [3, 4]], levels), settings)
    assert out.shape == (4, 1, 100)
    np.testing.assert_allclose(out.mean(dim=(1, 2)).numpy(), [3, 3, -5, -5], atol=0.2)  # [a, a, b, b], not [a, b, a, b]
    with pytest.raises(InvalidConditioning, match="either every prompt"):
        sample(backend, Batch(["a", "b"], [None, None], [[1], [2]], [levels[0], None]), settings)


def spec_for_folder_stub():
    from pathlib import Path

    from cadenza.checkpoints import CheckpointSpec
    from cadenza.generators.diffusion.pipeline_dir import CAPABILITIES

    return CheckpointSpec(name="fake", family="diffusion", directory=Path("."), files={}, config={"format": "fake"},
                          capabilities=CAPABILITIES, license="test")


def test_stable_audio_denoises_only_the_frames_the_duration_needs(generators):
    gen = generators["stable_audio"]
    lengths = []
    hook = gen.backend.pipe.transformer.register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[-1]))
    try:
        out = run(gen, duration_s=0.1)[0]
    finally:
        hook.remove()
    # 0.1 s at 8 kHz with 32 samples per frame: ceil(25) = 25 frames of the 128-frame (0.512 s) window.
    assert set(lengths) == {25} and gen.backend.window == 128
    assert out.samples.shape == (2, 800)
    assert gen.backend.frames(0.1001) == 26  # rounded up, never cut short


def test_bad_inputs_are_refused_with_reasons(generators, pipeline_dirs, tmp_path, midi_file):
    gen = generators["audioldm2"]
    with pytest.raises(InvalidConditioning, match="dpm\\+\\+.*ddim.*euler.*heun"):
        run(gen, scheduler="plms")
    with pytest.raises(InvalidConditioning, match="dpm\\+\\+-sde"):
        run(generators["stable_audio"], scheduler="heun")  # no Heun over continuous sigmas
    with pytest.raises(InvalidConditioning, match="strength needs an audio prompt"):
        run(gen, strength=0.5)
    with pytest.raises(InvalidConditioning, match="longer than this model makes"):
        run(generators["stable_audio"], duration_s=2.0)
    with pytest.raises(UnsupportedConditioning, match="prompt_midi"):
        run(gen, prompt=str(midi_file()))
    with pytest.raises(UnsupportedConditioning, match="tempo_bpm"):
        run(gen, tempo_bpm=100)
    studio = Studio(model_dirs=[])
    with pytest.raises(UnsupportedConditioning, match="temperature"):
        studio.generate(str(pipeline_dirs["audioldm2"]), Conditioning(text="x"), Sampling(temperature=0.5))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(CheckpointError, match="not supported"):
        studio.spec(str(bad))
    with pytest.raises(CheckpointError, match="no model named"):
        studio.spec("nobody/not-in-the-cache")


def test_a_hub_id_in_the_hf_cache_resolves_offline(pipeline_dirs, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants

    from cadenza.generators.diffusion.pipeline_dir import find_pipeline

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-audioldm2" / "snapshots" / "0123abcd"
    shutil.copytree(pipeline_dirs["audioldm2"], snapshot)
    (cache / "models--someone--tiny-audioldm2" / "refs").mkdir()
    (cache / "models--someone--tiny-audioldm2" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert find_pipeline("someone/tiny-audioldm2") == snapshot.resolve()
    assert find_pipeline("someone/not-cached") is None
    spec = Studio(model_dirs=[]).spec("someone/tiny-audioldm2")
    assert spec.config["pipeline"] == "AudioLDM2Pipeline" and spec.name == "someone/tiny-audioldm2"


def test_progress_and_cancel(generators):
    from cadenza.errors import Cancelled
    from cadenza.generators.base import Callbacks

    gen = generators["stable_audio"]
    seen = []
    gen.generate(Conditioning(text="x", duration_s=0.1), Sampling(seed=0, steps=4),
                 Callbacks(progress=lambda done, total: seen.append((done, total))))
    assert seen == [(i, 4) for i in range(1, 5)]
    with pytest.raises(Cancelled):
        gen.generate(Conditioning(text="x", duration_s=0.1), Sampling(seed=0, steps=4),
                     Callbacks(should_cancel=lambda: True))


def test_pull_links_the_pipeline_in_the_hugging_face_cache(pipeline_dirs, tmp_path, monkeypatch):
    import shutil

    from cadenza import hub
    from cadenza.app.cli import main
    from cadenza.generators.diffusion import pull as pull_module

    calls = []

    def fake_snapshot(repo, revision, patterns):  # what huggingface_hub would place in its cache; no network
        calls.append((repo, revision, patterns))
        folder = tmp_path / "hf" / repo.replace("/", "--") / "snapshots" / revision
        shutil.copytree(pipeline_dirs["stable_audio"], folder)
        return folder

    monkeypatch.setattr(hub, "require_network", lambda: None)
    monkeypatch.setattr(hub, "hf_snapshot", fake_snapshot)
    models = tmp_path / "models"
    assert main(["pull", "stable-audio-open-1.0", "--dir", str(models)]) == 0
    repo, revision, patterns = calls[0]
    assert repo == "stabilityai/stable-audio-open-1.0" and len(revision) == 40 and "*/*.safetensors" in patterns
    assert "model.safetensors" not in patterns  # never the 4.8 GB single-file checkpoint at the root
    assert (models / "stable-audio-open-1.0" / "pipeline").is_symlink()  # shared with the HF cache, not copied
    spec = Studio(model_dirs=[models]).spec("stable-audio-open-1.0")
    assert spec.config["pipeline"] == "StableAudioPipeline" and "Community License" in spec.license
    assert spec.made_by["source"]["hub"] == "stabilityai/stable-audio-open-1.0"
    assert spec.made_by["source"]["revision"] == revision
    spec.verify()
    with pytest.raises(CheckpointError, match="known: audioldm2"):
        pull_module.pull_pipeline("stable-audio-2", root=tmp_path, downloader=fake_snapshot)
