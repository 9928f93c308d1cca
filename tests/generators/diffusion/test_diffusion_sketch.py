"""The shipped diffusion model performs a melody from its sketch, as far from it as ``strength`` says."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza import Conditioning, Sampling, Studio
from cadenza.conditioning import Capability
from cadenza.data.sketch import SKETCH_ACCENT_DB
from cadenza.errors import InvalidConditioning

MODEL = "diffusion-folk-small"
NOTES = [(0, 480, 67, 90), (480, 480, 71, 90), (960, 960, 74, 90)]


@pytest.fixture(scope="module")
def studio():
    studio = Studio()
    if MODEL not in studio.specs() or Capability.MELODY_MIDI not in studio.spec(MODEL).capabilities:
        pytest.skip(f"{MODEL} does not read a score")
    return studio


def test_a_melody_starts_from_its_sketch_on_the_texts_instrument(studio, midi_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tune = str(midi_file("tune.mid", notes=NOTES, qpm=120))
    request = Conditioning(text="a solo flute", melody=tune)
    default = studio.generate(MODEL, request, Sampling(seed=0, steps=6))[0]
    sketch = default.provenance.notes["sketch"]
    strength = default.provenance.notes["model_defaults"]["sketch_strength"]
    accent = default.provenance.notes["model_defaults"]["sketch_accent_db"]
    assert sketch == {"instrument": "flute", "strength": strength, "accent_db": accent} and strength < 1.0
    assert accent > SKETCH_ACCENT_DB  # the DiT blurs more of the note starts than the codec LM: a stronger accent
    assert default.provenance.notes["steps_run"] == int(6 * strength)
    own = studio.generate(MODEL, request, Sampling(seed=0, steps=6, strength=1.0))[0]
    assert "sketch" not in own.provenance.notes and own.provenance.notes["steps_run"] == 6
    assert not np.allclose(default.samples, own.samples, atol=1e-3)
    again = studio.generate(MODEL, request, Sampling(seed=0, steps=6))[0]
    assert np.array_equal(default.samples, again.samples)


def test_strength_needs_something_to_start_from(studio):
    with pytest.raises(InvalidConditioning, match="strength needs an audio prompt"):
        studio.generate(MODEL, Conditioning(text="a flute", duration_s=1.0), Sampling(seed=0, strength=0.5))


def test_the_cli_says_what_the_performance_started_from(studio, midi_file, tmp_path, capsys, monkeypatch):
    from cadenza.app import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tune = str(midi_file("tune.mid", notes=NOTES, qpm=120))
    out = tmp_path / "flute.wav"
    assert cli.main(["generate", MODEL, "--text", "a solo flute", "--melody", tune, "--steps", "4", "--seed", "1",
                     "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "performed from the score's sketch on flute, strength" in said and out.is_file()
    assert cli.main(["generate", MODEL, "--text", "a solo flute", "--melody", tune, "--steps", "4", "--strength", "1",
                     "-o", str(tmp_path / "own.wav")]) == 0
    assert "sketch" not in capsys.readouterr().out
