"""The shipped DDSP instruments: verified, small, made by the recipe, and they follow the source's pitch."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.checkpoints import REPO_CHECKPOINTS
from cadenza.conditioning import Sampling
from cadenza.generators.ddsp.evaluate import cents_error
from cadenza.generators.ddsp.features import default_tracker
from cadenza.studio import Studio

from ddsp_fixtures import sung_tone

DEFAULTS = ("violin", "flute", "trumpet", "clarinet")
SHIPPED = [name for name in DEFAULTS if (REPO_CHECKPOINTS / f"ddsp-{name}" / "manifest.json").exists()]


@pytest.fixture(scope="module")
def studio():
    return Studio(model_dirs=[REPO_CHECKPOINTS])


def test_the_defaults_are_shipped():
    assert "violin" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_instrument_follows_the_source(studio, name, tmp_path):
    spec = studio.spec(f"ddsp-{name}")
    spec.verify()
    assert spec.family == "ddsp" and [c.value for c in spec.capabilities] == ["source_audio"]
    assert spec.made_by["recipe"] == "cadenza train ddsp" and f"--instrument {name}" in spec.made_by["command"]
    assert (spec.directory / spec.files["weights"]["path"]).stat().st_size < 10_000_000
    from cadenza.fileio.audio import write_audio

    source = sung_tone(16000, seconds=1.8, silence_s=0.3, hz=196.0)
    write_audio(tmp_path / "tone.wav", source[None], 16000)
    out = studio.transfer(tmp_path / "tone.wav", name, sampling=Sampling(seed=0))
    tracker = default_tracker()
    f0_in, conf_in = tracker.track(source)
    f0_out, conf_out = tracker.track(out.samples[0])
    shift = 2.0 ** out.provenance.notes["octave_shift"]
    err = cents_error(f0_in * shift, f0_out, (conf_in > 0.5) & (conf_out > 0.5))
    assert err.size > 0.8 * (conf_in > 0.5).sum()
    assert np.median(err) < 50
    assert np.abs(out.samples[0, :3000]).max() < 0.01  # the leading silence stays silent
