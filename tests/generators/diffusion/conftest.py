"""Session fixtures: tiny random AudioLDM2 / Stable Audio pipelines saved with ``save_pretrained`` and
loaded back through the same loader a real model folder goes through."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cadenza.generators.diffusion.tiny import build_audioldm2, build_stable_audio, save_pipeline  # noqa: E402

# diffusers' schedulers call np.array on tensors, which numpy 2 flags; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="session")
def pipeline_dirs(tmp_path_factory) -> dict:
    """``{"audioldm2": Path, "stable_audio": Path}``: bare diffusers folders (model_index.json + components)."""
    root = tmp_path_factory.mktemp("pipelines")
    return {"audioldm2": save_pipeline(build_audioldm2(), root / "tiny-audioldm2"),
            "stable_audio": save_pipeline(build_stable_audio(), root / "tiny-stable-audio")}


@pytest.fixture(scope="session")
def loaded(pipeline_dirs) -> dict:
    """The saved pipelines loaded with ``load_pipeline`` (local files only), keyed like ``pipeline_dirs``."""
    from cadenza.generators.diffusion.pipeline_dir import load_pipeline

    return {name: load_pipeline(path) for name, path in pipeline_dirs.items()}
