"""The embedded default models: present, verified by sha256, made by the recipe, and they make music."""

from __future__ import annotations

import pytest

from cadenza import Conditioning, Sampling, Studio
from cadenza.checkpoints import REPO_CHECKPOINTS

DEFAULT_SYMBOLIC = "remi-folk-small"


@pytest.fixture(scope="module")
def studio():
    return Studio(model_dirs=[REPO_CHECKPOINTS])


def test_default_symbolic_model_is_listed_and_verified(studio):
    spec = studio.spec(DEFAULT_SYMBOLIC)
    assert spec.family == "symbolic" and spec.output == "midi"
    assert spec.directory.parent == REPO_CHECKPOINTS
    spec.verify()
    assert spec.made_by["recipe"] == "cadenza train symbolic"
    assert "cadenza train symbolic" in spec.made_by["command"]
    assert spec.metrics["val_loss"] < 2.0 and spec.metrics["test_loss"] < 2.0
    assert "excluded" in spec.license
    size = sum((spec.directory / f["path"]).stat().st_size for f in spec.files.values())
    assert size < 40 * 2**20


def test_default_symbolic_model_writes_the_requested_music(studio):
    out = studio.generate(DEFAULT_SYMBOLIC, Conditioning(key="G major", time_signature="3/4", bars=4, tempo_bpm=90),
                          Sampling(seed=0))[0]
    notes = out.provenance.notes
    assert (notes["key"], notes["time_signature"], notes["bars_written"]) == ("G major", "3/4", 4)
    assert out.score.note_num() >= 4
    assert out.score.tempos[0].qpm == pytest.approx(90, abs=1e-3)
