"""T5-conditioned MusicGen releases (what the real checkpoints use), with a tiny random T5 stored beside
the weights in ``t5/``: our T5 path equals audiocraft's ``T5Conditioner`` and the release generates."""

from __future__ import annotations

import shutil

import pytest
import torch
from tiny_musicgen import build_tiny_audiocraft, write_tiny_t5

from cadenza import Conditioning, Sampling
from cadenza.generators.codec_lm.audiocraft_configs import save_release
from cadenza.generators.codec_lm.conditioners import ConditionInputs
from cadenza.generators.codec_lm.generator import CodecLMGenerator
from cadenza.generators.codec_lm.release_dir import spec_for_release

@pytest.fixture(scope="module")
def t5_release(tmp_path_factory):
    """A release whose text conditioner is T5 't5-base' (built by audiocraft's builders, its T5 loader
    pointed at the tiny local copy), with that copy in ``<release>/t5/``."""
    from cadenza.compat import import_audiocraft

    import_audiocraft()
    import audiocraft.modules.conditioners as ac_conditioners
    from transformers import AutoTokenizer, T5EncoderModel

    root = tmp_path_factory.mktemp("t5")
    t5_dir = write_tiny_t5(root / "t5-files")

    class LocalTokenizer:
        @staticmethod
        def from_pretrained(name):
            return AutoTokenizer.from_pretrained(t5_dir, local_files_only=True)

    class LocalT5:
        @staticmethod
        def from_pretrained(name):
            return T5EncoderModel.from_pretrained(t5_dir, local_files_only=True)

    saved = ac_conditioners.T5Tokenizer, ac_conditioners.T5EncoderModel
    ac_conditioners.T5Tokenizer, ac_conditioners.T5EncoderModel = LocalTokenizer, LocalT5
    try:
        t5 = {"model": "t5", "t5": {"name": "t5-base", "finetune": False, "word_dropout": 0.0, "normalize_text": False}}
        ref, codec, lm_cfg, codec_cfg = build_tiny_audiocraft("mono", conditioners={"description": t5})
    finally:
        ac_conditioners.T5Tokenizer, ac_conditioners.T5EncoderModel = saved
    release = save_release(root / "release", ref, lm_cfg, codec, codec_cfg)
    shutil.copytree(t5_dir, release / "t5")
    return ref, release


def test_t5_states_match_audiocrafts_conditioner(t5_release):
    ref, release = t5_release
    gen = CodecLMGenerator.from_checkpoint(spec_for_release(release))
    texts = ["calm piano with rain", None, "loud drums"]
    with torch.no_grad():
        conditioner = ref.condition_provider.conditioners["description"]
        want, _ = conditioner(conditioner.tokenize(texts))
        got, mask, prefix = gen.bundle.condition(ConditionInputs(texts, [None] * 3))
    assert prefix is None and mask is None
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)
    assert not bool(got[1].any())  # the null text is all zeros


def test_t5_release_generates(t5_release):
    _, release = t5_release
    gen = CodecLMGenerator.from_checkpoint(spec_for_release(release))
    out = gen.generate(Conditioning(text="calm piano", duration_s=0.6), Sampling(seed=0))[0]
    assert out.samples.shape == (1, 4800)
