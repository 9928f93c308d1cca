"""Shared fixtures: a tiny random symbolic checkpoint built in code (through the same path as a real
one: RemiTokenizer -> SymbolicTransformer -> safetensors + tokenizer.json + manifest), a Studio that
finds it, and small MIDI files written with symusic. No network, no GPU, no trained weights."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import symusic
import torch
from safetensors.torch import save_file

from cadenza.checkpoints import CheckpointSpec, write_manifest
from cadenza.generators.symbolic.generator import CAPABILITIES
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
from cadenza.studio import Studio
from cadenza.tokenizers.remi import RemiTokenizer

TINY_NAME = "tiny-remi"

# (start tick, duration in ticks, MIDI pitch, velocity)
NoteSpec = tuple[int, int, int, int]


def build_tiny_checkpoint(directory: Path, name: str = TINY_NAME, seed: int = 0, max_seq_len: int = 1024) -> CheckpointSpec:
    """Write a random 2-layer REMI model into ``directory`` exactly as ``export_checkpoint`` lays one out."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = RemiTokenizer()
    config = TransformerConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, ffn_dim=64,
                               max_seq_len=max_seq_len)
    torch.manual_seed(seed)
    model = SymbolicTransformer(config)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to embed
    save_file(tensors, directory / "model.safetensors")
    tokenizer.save(directory / "tokenizer.json")
    return write_manifest(directory, name=name, family="symbolic",
                          files={"weights": "model.safetensors", "tokenizer": "tokenizer.json"},
                          config={"model": config.to_dict(), "train": {}}, capabilities=list(CAPABILITIES),
                          license="test weights (random)", description="tiny random model for tests")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A model folder holding ``tiny-remi/`` (built once per session; tests must not modify it)."""
    root = tmp_path_factory.mktemp("models")
    build_tiny_checkpoint(root / TINY_NAME)
    return root


@pytest.fixture(scope="session")
def studio(tiny_root) -> Studio:
    return Studio(model_dirs=[tiny_root])


@pytest.fixture(scope="session")
def tokenizer() -> RemiTokenizer:
    return RemiTokenizer()


@pytest.fixture
def copy_tiny(tiny_root) -> Callable[[Path, str], Path]:
    """``copy_tiny(dest_root, name)``: a private copy of the tiny checkpoint (to tamper with or rename)."""

    def copy(dest_root: Path, name: str = TINY_NAME) -> Path:
        dest = dest_root / name
        shutil.copytree(tiny_root / TINY_NAME, dest)
        if name != TINY_NAME:
            import json

            manifest = json.loads((dest / "manifest.json").read_text())
            manifest["name"] = name
            (dest / "manifest.json").write_text(json.dumps(manifest))
        return dest

    return copy


def build_score(notes: Sequence[NoteSpec] = ((0, 480, 60, 100),), *, tpq: int = 480, qpm: float | None = None,
                time_signature: tuple[int, int] | None = None, program: int = 0) -> symusic.Score:
    score = symusic.Score(tpq)
    if qpm is not None:
        score.tempos.append(symusic.Tempo(0, qpm=qpm))
    if time_signature is not None:
        score.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    track = symusic.Track(program=program)
    for start, duration, pitch, velocity in notes:
        track.notes.append(symusic.Note(start, duration, pitch, velocity))
    score.tracks.append(track)
    return score


@pytest.fixture
def score_of() -> Callable[..., symusic.Score]:
    """``score_of(notes, tpq=..., qpm=..., time_signature=(3, 4), program=...)``: see ``build_score``."""
    return build_score


@pytest.fixture
def make_tiny_checkpoint() -> Callable[..., CheckpointSpec]:
    """``make_tiny_checkpoint(directory, name=..., seed=..., max_seq_len=...)``: see ``build_tiny_checkpoint``."""
    return build_tiny_checkpoint


@pytest.fixture
def midi_file(tmp_path) -> Callable[..., Path]:
    """``midi_file("a.mid", notes=..., tpq=..., qpm=..., time_signature=(3, 4))`` writes a MIDI file."""

    def write(name: str = "song.mid", **kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        build_score(**kwargs).dump_midi(str(path))
        return path

    return write


@pytest.fixture
def eager_backend_compile(monkeypatch):
    """``torch.compile`` with the ``eager`` backend: dynamo traces the step (graph breaks and recompiles
    behave as with inductor) without minutes of C++ compilation. A recompile raises, a compile failure
    that ``maybe_compile`` would hide behind its eager fallback fails the test, and exactly one graph
    must have been compiled by the end."""
    import warnings

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    with torch._dynamo.config.patch(error_on_recompile=True), warnings.catch_warnings():
        warnings.filterwarnings("error", message="torch.compile failed")
        yield
    assert counters["stats"]["unique_graphs"] == 1  # the step was compiled, once
    torch._dynamo.reset()
