"""Shared fixtures: a tiny random symbolic checkpoint built in code (through the same path as a real
one: RemiTokenizer -> SymbolicTransformer -> safetensors + tokenizer.json + manifest), a Studio that
finds it, tiny random LMs for the decode tests, and small MIDI files written with symusic. No network,
no GPU, no trained weights; tests marked ``cuda`` skip without one."""

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
from cadenza.engine.decode import decode_step
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig, init_weights
from cadenza.generators.symbolic.generator import capabilities_of
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
from cadenza.studio import Studio
from cadenza.tokenizers.remi import RemiTokenizer

TINY_NAME = "tiny-remi"

# (start tick, duration in ticks, MIDI pitch, velocity)
NoteSpec = tuple[int, int, int, int]


def pytest_collection_modifyitems(config, items):
    # The marker is registered in pyproject.toml; here tests marked ``cuda`` skip on CPU-only machines.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def private_hash_cache(tmp_path_factory):
    """Verified checkpoint hashes go to a file of this test session, never the user's ~/.cache."""
    import os

    before = os.environ.get("CADENZA_HASH_CACHE")
    os.environ["CADENZA_HASH_CACHE"] = str(tmp_path_factory.mktemp("hashes") / "sha256-cache.json")
    yield
    if before is None:
        os.environ.pop("CADENZA_HASH_CACHE", None)
    else:
        os.environ["CADENZA_HASH_CACHE"] = before


@pytest.fixture
def one_thread():
    """Run a decode test on one CPU thread: on a busy 2-core box, 2 threads made tiny decodes ~20x
    slower (threads spin waiting for each other), and one thread keeps timings steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_transformer(vocab_size: int = 64, seed: int = 0, max_seq_len: int = 128) -> SymbolicTransformer:
    """A random 2-layer model, small enough that a decode takes milliseconds."""
    torch.manual_seed(seed)  # model init only; the decode tests pass explicit generators
    config = TransformerConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, ffn_dim=64,
                               max_seq_len=max_seq_len)
    model = SymbolicTransformer(config).eval()
    # Larger weights than the 0.02 init give peaked, distinguishable logits, so greedy comparisons
    # are not decided by float noise between near-equal candidates.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(20.0)
    return model


@pytest.fixture
def tiny_model() -> SymbolicTransformer:
    return tiny_transformer()


@pytest.fixture
def make_tiny_model():
    """The ``tiny_transformer`` factory, for tests that need several sizes or seeds."""
    return tiny_transformer


def tiny_codec_lm(**overrides) -> CodecLM:
    """A random 2-layer codec LM (3 codebooks of 11 codes, cross-attention to 6-wide states by default)."""
    torch.manual_seed(0)
    config = CodecLMConfig(**{"n_q": 3, "card": 11, "dim": 16, "num_heads": 2, "num_layers": 2, "ffn_dim": 32,
                              "cond_dim": 6, "max_seq_len": 64, **overrides})
    lm = CodecLM(config)
    init_weights(lm, std=0.3)
    return lm.eval()


@pytest.fixture
def make_tiny_codec_lm():
    """The ``tiny_codec_lm`` factory (keyword overrides of its config)."""
    return tiny_codec_lm


@pytest.fixture(scope="session")
def build_kernel_or_skip():
    """``build(kernel)`` -> the built C++ step extension (a no-op when an up-to-date build exists, about 30 s
    when not); skips where ``CADENZA_CPU_KERNEL=0`` or there is no C++ toolchain (generation then uses the
    Python step). With a toolchain a build error is a failure, not a skip."""
    import sysconfig

    from cadenza.engine.cpp_kernel import CppKernel, enabled

    def build(kernel: CppKernel):
        if not enabled():
            pytest.skip("CADENZA_CPU_KERNEL=0")
        from torch.utils.cpp_extension import get_cxx_compiler, is_ninja_available

        compiler = get_cxx_compiler()
        headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
        if shutil.which(compiler) is None or not is_ninja_available() or not headers.is_file():
            pytest.skip(f"no C++ toolchain here ({compiler}, ninja, {headers}): generation uses the Python step")
        return kernel.build()

    return build


@pytest.fixture
def one_graph_step():
    """``decode_step`` compiled as a single graph (``eager`` backend: dynamo's tracing without C++
    compilation); a recompile raises instead of passing quietly."""
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        yield torch.compile(decode_step, backend="eager", fullgraph=True, dynamic=False)
    torch._dynamo.reset()


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
                          config={"model": config.to_dict(), "train": {}}, capabilities=list(capabilities_of(tokenizer)),
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


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance (2 CPUs, no dashboard) shared by every Ray test of the session: starting one
    takes seconds on a small machine. Skipped when Ray (the `distributed` extra) is not installed. Its
    files go to a short folder of its own (Ray's socket paths must stay under 108 characters), removed after."""
    import tempfile

    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'cadenza[distributed]')")
    folder = tempfile.mkdtemp(prefix="cray-", dir="/tmp")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=100 * 2**20, _temp_dir=folder)
    yield ray
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)
