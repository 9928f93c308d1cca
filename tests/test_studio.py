"""Studio: discovery, model listing, the LRU cache of loaded generators, $CADENZA_MODELS."""

from __future__ import annotations

import os

import pytest

import cadenza.checkpoints
from cadenza.conditioning import Conditioning, Sampling
from cadenza.errors import CheckpointError, UnsupportedConditioning
from cadenza.generators.symbolic.generator import SymbolicGenerator, capabilities_of
from cadenza.tokenizers.remi import RemiTokenizer

CAPABILITIES = capabilities_of(RemiTokenizer())  # the tiny test model has the infilling tokens
from cadenza.outputs import MidiOutput
from cadenza.studio import Studio


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Only the folders a test names are searched (not the repo's checkpoints/ or ~/.cache)."""
    monkeypatch.delenv("CADENZA_MODELS", raising=False)
    monkeypatch.setattr(cadenza.checkpoints, "REPO_CHECKPOINTS", tmp_path / "no-repo")
    monkeypatch.setattr(cadenza.checkpoints, "USER_CHECKPOINTS", tmp_path / "no-user")


def test_models_lists_the_tiny_model(studio, tiny_root):
    infos = {m.name: m for m in studio.models()}
    info = infos["tiny-remi"]
    assert info.family == "symbolic" and info.output == "midi"
    assert set(info.capabilities) == {c.value for c in CAPABILITIES}
    assert list(info.capabilities) == sorted(info.capabilities)
    assert info.path == str(tiny_root / "tiny-remi")
    assert info.to_dict()["capabilities"] == list(info.capabilities)


def test_unknown_model_lists_installed(isolated, tiny_root):
    studio = Studio(model_dirs=[tiny_root])
    with pytest.raises(CheckpointError, match=r"no model named 'nope' \(installed: tiny-remi\)"):
        studio.spec("nope")
    with pytest.raises(CheckpointError, match="installed: tiny-remi"):
        studio.generate("nope", Conditioning(bars=1))


def test_spec_accepts_a_checkpoint_folder_path(isolated, tiny_root):
    spec = Studio().spec(str(tiny_root / "tiny-remi"))
    assert spec.name == "tiny-remi"


def test_load_returns_a_cached_symbolic_generator(isolated, tiny_root):
    studio = Studio(model_dirs=[tiny_root])
    first = studio.load("tiny-remi")
    assert isinstance(first, SymbolicGenerator)
    assert first.capabilities == CAPABILITIES
    assert studio.load("tiny-remi") is first


def test_lru_cache_evicts(isolated, tmp_path, copy_tiny):
    copy_tiny(tmp_path, "alpha")
    copy_tiny(tmp_path, "beta")
    studio = Studio(model_dirs=[tmp_path], cache_size=1)
    a = studio.load("alpha")
    assert studio.load("alpha") is a
    b = studio.load("beta")
    assert b is not a and b.spec.name == "beta"
    assert list(studio._loaded) == ["beta"]
    a2 = studio.load("alpha")  # evicted: loaded afresh
    assert a2 is not a and list(studio._loaded) == ["alpha"]


def test_lru_cache_keeps_most_recent(isolated, tmp_path, copy_tiny):
    for name in ("a1", "a2", "a3"):
        copy_tiny(tmp_path, name)
    studio = Studio(model_dirs=[tmp_path], cache_size=2)
    g1 = studio.load("a1")
    studio.load("a2")
    assert studio.load("a1") is g1  # a1 is now the most recent
    studio.load("a3")  # evicts a2, the least recent
    assert set(studio._loaded) == {"a1", "a3"}


def test_cadenza_models_env_is_honoured(isolated, monkeypatch, tmp_path, tiny_root):
    assert "tiny-remi" not in {m.name for m in Studio().models()}
    other = tmp_path / "empty"
    other.mkdir()
    monkeypatch.setenv("CADENZA_MODELS", os.pathsep.join([str(other), str(tiny_root)]))
    assert [m.name for m in Studio().models()] == ["tiny-remi"]
    outputs = Studio().generate("tiny-remi", Conditioning(bars=1), Sampling(seed=0, max_tokens=40))
    assert len(outputs) == 1 and isinstance(outputs[0], MidiOutput)


def test_render_refuses_unknown_synth(studio):
    output = studio.generate("tiny-remi", Conditioning(bars=1), Sampling(seed=0, max_tokens=40))[0]
    with pytest.raises(UnsupportedConditioning, match="timidity"):
        studio.render(output, synth="timidity")


def test_transfer_needs_a_ddsp_model(studio, tmp_path):
    with pytest.raises(UnsupportedConditioning, match="ddsp"):
        studio.transfer(tmp_path / "voice.wav", "tiny-remi")


def test_progress_and_cancel_callbacks(studio):
    from cadenza.errors import Cancelled
    from cadenza.generators.base import Callbacks

    seen = []
    studio.generate("tiny-remi", Conditioning(bars=2), Sampling(seed=0, max_tokens=30),
                    Callbacks(progress=lambda done, total: seen.append((done, total))))
    assert seen and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(Cancelled):
        studio.generate("tiny-remi", Conditioning(bars=2), Sampling(seed=0, max_tokens=30),
                        Callbacks(should_cancel=lambda: True))


def test_sampling_fields_a_model_does_not_use_are_refused(studio_with_default=None):
    """A symbolic model has no denoising steps: asking for them raises instead of being ignored."""
    import pytest

    from cadenza.conditioning import Sampling
    from cadenza.errors import UnsupportedConditioning
    from cadenza.studio import Studio

    studio = Studio()
    with pytest.raises(UnsupportedConditioning, match="steps"):
        studio.generate("remi-folk-small", sampling=Sampling(steps=20))
    assert "key_bias" in next(m for m in studio.models() if m.name == "remi-folk-small").sampling


def test_a_checkpoint_folder_given_by_path_generates(isolated, tiny_root, tmp_path):
    """A folder with a manifest outside the model dirs is used by its path (as `cadenza generate DIR` does)."""
    studio = Studio(model_dirs=[tmp_path / "empty"])
    path = str(tiny_root / "tiny-remi")
    out = studio.generate(path, Conditioning(bars=2), Sampling(seed=0))
    assert len(out) == 1 and isinstance(out[0], MidiOutput)
    assert studio.load(path) is studio.load(path)


def test_render_a_midi_file_by_path(studio, midi_file, tmp_path):
    pytest.importorskip("fluidsynth", reason="needs libfluidsynth + pyfluidsynth")
    from cadenza.errors import CorruptMidi

    path = midi_file("song.mid", notes=[(0, 480, 60, 100), (480, 480, 64, 100)], qpm=120)
    audio = studio.render(path, sample_rate=22050, reverb=False, normalize_lufs=None, tail_s=0.2)
    assert audio.sample_rate == 22050 and audio.samples.shape[0] == 2 and audio.stems == ()
    assert audio.duration_s == pytest.approx(1.2, abs=0.01)  # two quarter notes at 120 BPM + the tail
    notes = audio.provenance.notes
    assert notes["rendered_with"] == "fluidsynth" and notes["loaded_from"] == str(path)
    assert audio.provenance.family == "file" and len(notes["sha256"]) == 64
    with pytest.raises(UnsupportedConditioning, match="has no option 'reverb_level'"):
        studio.render(path, reverb_level=0.3)
    with pytest.raises(UnsupportedConditioning, match="seed"):
        studio.render(path, seed=3)
    (tmp_path / "notes.mid").write_text("not midi")
    with pytest.raises(CorruptMidi, match="not a MIDI file"):
        studio.render(tmp_path / "notes.mid")


def test_render_a_midi_file_with_a_ddsp_instrument(studio, midi_file, tmp_path):
    if "ddsp-violin" not in studio.specs():
        pytest.skip("checkpoints/ddsp-violin is not installed")
    path = midi_file("duet.mid", notes=[(0, 480, 67, 100), (0, 480, 76, 90), (480, 480, 69, 100)], qpm=120)
    audio = studio.render(str(path), synth="ddsp:violin", normalize_lufs=None, tail_s=0.1, seed=1)
    assert audio.sample_rate == 16000 and audio.samples.shape[0] == 1
    assert audio.duration_s == pytest.approx(1.1, abs=0.05) and audio.samples.std() > 1e-4
    notes = audio.provenance.notes
    assert notes["rendered_with"] == "ddsp:ddsp-violin" and notes["loaded_from"] == str(path)
    assert notes["render_seed"] == 1 and len(audio.stems) == 2  # a two-note chord: two voices
    assert abs(sum(s.samples for s in audio.stems) - audio.samples).max() < 1e-4
    with pytest.raises(UnsupportedConditioning, match="one MIDI file at a time"):
        studio.render_batch(tmp_path, tmp_path / "out", synth="ddsp:violin")


def test_a_chosen_thread_count_holds_while_a_model_works(tiny_root, monkeypatch):
    import torch

    from cadenza.errors import InvalidConditioning

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what the process had (OMP_NUM_THREADS=1 in the tests would hide the choice)
    try:
        for chosen, used in ((None, 1), (1, 1), (3, 3)):  # default: the small model's own single thread
            studio = Studio(model_dirs=[tiny_root], threads=chosen)
            out = studio.generate("tiny-remi", Conditioning(bars=1), Sampling(seed=0))[0]
            assert torch.get_num_threads() == 2  # restored afterwards
            assert out.provenance.notes["cpu_threads"] == used  # recorded: on the CPU the bits may depend on it
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("CADENZA_THREADS", "1")
    assert Studio(model_dirs=[tiny_root])._threads == 1
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InvalidConditioning, match="threads"):
            Studio(model_dirs=[tiny_root], threads=bad)
    monkeypatch.setenv("CADENZA_THREADS", "many")
    with pytest.raises(InvalidConditioning, match="CADENZA_THREADS"):
        Studio(model_dirs=[tiny_root])
