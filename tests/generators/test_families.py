"""The family registry: the built-in four from their descriptors, and an outside family (the toy plugin in
tests/plugins/toy_family) joining through the ``cadenza.families`` entry point group alone: listed,
generated from, trained, and shown on the web page with its own controls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cadenza.checkpoints
from cadenza import CheckpointError, Conditioning, InvalidConditioning, Sampling, Studio, UnsupportedConditioning
from cadenza.generators import families as registry
from cadenza.generators.family import Family

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "toy_family"
TOY_CHECKPOINTS = PLUGIN / "checkpoints"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("CADENZA_MODELS", raising=False)
    monkeypatch.setattr(cadenza.checkpoints, "REPO_CHECKPOINTS", tmp_path / "no-repo")
    monkeypatch.setattr(cadenza.checkpoints, "USER_CHECKPOINTS", tmp_path / "no-user")


@pytest.fixture
def toy(monkeypatch, isolated) -> Studio:
    """The toy plugin installed (on sys.path, as an installed package would be) and its model found."""
    monkeypatch.syspath_prepend(str(PLUGIN))
    return Studio(model_dirs=[TOY_CHECKPOINTS])


def _cli(*args: str, models: Path = TOY_CHECKPOINTS, plugin: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CADENZA_MODELS": str(models), "OMP_NUM_THREADS": "1"}
    paths = ([str(PLUGIN)] if plugin else []) + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.run([sys.executable, "-m", "cadenza.app.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_builtin_families_describe_themselves_without_torch():
    code = ("import sys; from cadenza.generators.families import families; fs = families(); "
            "print(list(fs)); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    assert out.split("\n")[:2] == ["['symbolic', 'codec_lm', 'diffusion', 'ddsp']", "False"]
    fs = registry.families()
    assert {f.output for f in fs.values()} == {"midi", "audio"} and fs["symbolic"].output == "midi"
    assert "key_bias" in fs["symbolic"].sampling and "scheduler" in fs["diffusion"].sampling
    assert fs["ddsp"].sampling == frozenset()


def test_one_table_of_schedulers_feeds_the_app():
    from cadenza.generators.diffusion.schedulers import KINDS

    offered = set(registry.family("diffusion").choices["scheduler"])
    assert offered == {name for table in KINDS.values() for name in table}


def test_recipes_and_pullable_models_come_from_the_descriptors():
    recipes = registry.train_recipes()
    assert {"symbolic", "codec-lm", "diffusion", "ddsp", "audio-data", "codec"} <= set(recipes)
    assert recipes["symbolic"].module == "cadenza.generators.symbolic.recipe"
    pullable = registry.pullable()
    assert "musicgen-small" in pullable and "stable-audio-open-1.0" in pullable
    with pytest.raises(CheckpointError, match="no model named 'musicgen-huge' to pull; known: .*musicgen-small"):
        registry.pull("musicgen-huge")


def test_a_descriptor_with_a_mistake_says_so():
    with pytest.raises(ValueError, match="'oops'.*output must be one of midi, audio.*unknown Sampling fields"):
        Family(name="oops", output="video", generator="a.b:C", sampling=frozenset({"warmth"}))
    with pytest.raises(ValueError, match="module:attribute"):
        Family(name="oops", output="midi", generator="a.b.C")


def test_an_unknown_family_names_the_known_ones(isolated, copy_tiny, tmp_path):
    from dataclasses import replace

    from cadenza.checkpoints import read_manifest

    spec = replace(read_manifest(copy_tiny(tmp_path, "odd")), family="harp")
    with pytest.raises(CheckpointError, match=r"model 'odd': unknown family 'harp' \(this installation knows symbolic"):
        registry.load_generator(spec)


def test_a_plugin_family_is_listed_loaded_and_generates(toy):
    assert "toy" in toy.families() and list(toy.families())[:4] == ["symbolic", "codec_lm", "diffusion", "ddsp"]
    info = toy.info("toy-scale")
    assert (info.family, info.output, info.sampling) == ("toy", "midi", ("temperature",))
    assert info.choices == {"style": ("up", "down", "up-down")}
    assert "toy-scale" in toy.train_recipes()
    seen = []
    from cadenza import Callbacks

    out = toy.generate("toy-scale", Conditioning(key="D major", bars=3, style="down"), Sampling(seed=4),
                       Callbacks(progress=lambda done, total: seen.append((done, total))))[0]
    pitches = out.score.tracks[0].notes.numpy()["pitch"].tolist()
    assert len(pitches) == 24 and pitches[0] == 62 and pitches[1:4] == [61, 59, 57]  # D C# B A
    assert seen[-1] == (3, 3) and out.provenance.family == "toy" and out.provenance.seed == 4
    def line(temperature: float) -> list[int]:
        out = toy.generate("toy-scale", Conditioning(bars=2), Sampling(seed=9, temperature=temperature))[0]
        return out.score.tracks[0].notes.numpy()["pitch"].tolist()

    assert line(1.5) == line(1.5) != line(1.0)  # hotter wanders off the scale's path, the same way for a seed
    with pytest.raises(UnsupportedConditioning, match="top_k"):
        toy.generate("toy-scale", Conditioning(bars=1), Sampling(top_k=5))
    with pytest.raises(UnsupportedConditioning, match="text"):
        toy.generate("toy-scale", Conditioning(text="a jig"))
    with pytest.raises(InvalidConditioning, match="sideways"):
        toy.generate("toy-scale", Conditioning(style="sideways"))


def test_without_the_plugin_its_models_are_explained(isolated):
    studio = Studio(model_dirs=[TOY_CHECKPOINTS])
    assert studio.models() == []
    with pytest.raises(CheckpointError, match="unknown family 'toy'"):
        studio.generate("toy-scale", Conditioning(bars=1))


def test_the_web_page_shows_the_plugin_family_s_own_controls(toy, tmp_path):
    from cadenza.app.web.controls import visible_widgets, widget_choices
    from cadenza.app.web.form import conditioning_from_form, sampling_from_form
    from cadenza.app.web.uploads import UploadPolicy

    info = next(m for m in toy.models() if m.family == "toy")
    assert visible_widgets(info.capabilities, info.sampling) == {"key", "bars", "style", "tempo_bpm", "temperature",
                                                                 "seed", "num_samples"}
    assert widget_choices("style", info.choices) == [("any", ""), ("up", "up"), ("down", "down"),
                                                     ("up-down", "up-down")]
    assert widget_choices("scheduler", info.choices) == [("model's default", "")]
    form = {"style": "up-down", "bars": "2", "key": "A minor", "text": "ignored: hidden", "temperature": 0.5,
            "top_k": 40, "seed": "3"}
    uploads = UploadPolicy(roots=(tmp_path,))
    conditioning = conditioning_from_form(info, form, uploads)
    sampling = sampling_from_form(info, form)
    assert conditioning == Conditioning(style="up-down", bars=2, key="A minor")
    assert sampling == Sampling(seed=3, temperature=0.5)
    assert len(toy.generate(info.name, conditioning, sampling)[0].score.tracks[0].notes) == 16


def test_the_cli_lists_generates_and_trains_a_plugin_family(tmp_path):
    listed = _cli("models", "--json")
    assert listed.returncode == 0, listed.stderr
    toy = next(m for m in json.loads(listed.stdout) if m["name"] == "toy-scale")
    assert (toy["family"], toy["output"], toy["sampling"]) == ("toy", "midi", ["temperature"])
    assert toy["choices"] == {"style": ["up", "down", "up-down"]}
    made = _cli("generate", "toy-scale", "--bars", "2", "--key", "G major", "--seed", "1",
                "-o", str(tmp_path / "s.mid"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "s.mid").stat().st_size > 0
    assert json.loads((tmp_path / "s.mid.json").read_text())["family"] == "toy"
    trained = _cli("train", "toy-scale", "--out", str(tmp_path / "models"), "--octave", "3")
    assert trained.returncode == 0, trained.stderr
    again = _cli("models", "--json", models=tmp_path / "models")
    assert [m["name"] for m in json.loads(again.stdout) if m["family"] == "toy"] == ["toy-scale"]
    bare = _cli("generate", "toy-scale", "-o", str(tmp_path / "t.mid"), plugin=False)
    assert bare.returncode == 2 and "unknown family 'toy'" in bare.stderr
