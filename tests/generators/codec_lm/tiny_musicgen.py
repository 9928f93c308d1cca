"""Tiny random MusicGen checkpoints built with audiocraft's own builders from omegaconf configs and saved
in audiocraft's release layout (``state_dict.bin`` + ``compression_state_dict.bin``), so tests load them
through the same path as a downloaded checkpoint. Conditioning: a LUT text conditioner with the
``noop`` tokenizer (no spaCy, no T5); melody models add audiocraft's chroma conditioner, built with
a stand-in for demucs (which it only needs for stem separation and would download)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from cadenza.generators.codec_lm.audiocraft_configs import (build_audiocraft_models, encodec_cfg, musicgen_lm_cfg,
                                                            save_release)

SAMPLE_RATE = 8000  # tiny codec: 8 kHz, hop 160 -> 50 frames per second, 4 codebooks of 64
CARD = 64
WINDOW_S = 2.0
LUT = {"model": "lut", "lut": {"n_bins": 64, "dim": 16, "tokenizer": "noop"}}
CHROMA = {"model": "chroma_stem", "chroma_stem": {"sample_rate": SAMPLE_RATE, "n_chroma": 12, "radix2_exp": 10,
                                                   "argmax": True}}


class _FakeDemucs:
    sources = ["drums", "bass", "other", "vocals"]

    def to(self, device):
        return self


def demucs_stand_in() -> dict[str, types.ModuleType]:
    """``demucs`` + ``demucs.pretrained`` modules whose ``get_model`` returns an inert object."""
    demucs = types.ModuleType("demucs")
    pretrained = types.ModuleType("demucs.pretrained")
    pretrained.get_model = lambda name: _FakeDemucs()
    demucs.pretrained = pretrained
    return {"demucs": demucs, "demucs.pretrained": pretrained}


def tiny_lm_cfg(kind: str = "mono", **overrides):
    """audiocraft LM configs: 'mono' (text via cross-attention), 'melody' (chroma + text prepended,
    as MusicGen-melody), 'stereo' (8 codebooks, delays 0,0,1,1,2,2,3,3)."""
    base = {"n_q": 4, "card": CARD, "dim": 32, "num_heads": 4, "num_layers": 2, "segment_duration": WINDOW_S}
    if kind == "melody":
        base.update(conditioners={"description": LUT, "self_wav": CHROMA}, cross=(), prepend=("description", "self_wav"))
    elif kind == "stereo":
        base.update(n_q=8, delays=[0, 0, 1, 1, 2, 2, 3, 3], stereo=True, conditioners={"description": LUT})
    else:
        base.update(conditioners={"description": LUT})
    return musicgen_lm_cfg(**{**base, **overrides})


def build_tiny_audiocraft(kind: str = "mono", seed: int = 0, **overrides):
    """Random audiocraft ``(LMModel, EncodecModel, lm_cfg, codec_cfg)``; weights perturbed so logits are
    peaked (greedy comparisons are then not decided by float noise)."""
    lm_cfg, codec_cfg = tiny_lm_cfg(kind, **overrides), encodec_cfg(sample_rate=SAMPLE_RATE, bins=CARD)
    saved = {name: sys.modules.get(name) for name in ("demucs", "demucs.pretrained")}
    sys.modules.update(demucs_stand_in())
    try:
        lm, codec = build_audiocraft_models(lm_cfg, codec_cfg, seed=seed)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.15)
    return lm, codec, lm_cfg, codec_cfg


def write_tiny_release(directory: Path, kind: str = "mono", seed: int = 0) -> Path:
    lm, codec, lm_cfg, codec_cfg = build_tiny_audiocraft(kind, seed)
    return save_release(directory, lm, lm_cfg, codec, codec_cfg)


def write_tone(path: Path, freq_hz: float = 440.0, seconds: float = 1.0, sample_rate: int = SAMPLE_RATE,
               channels: int = 1) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    sf.write(path, np.stack([wave] * channels, axis=1), sample_rate)
    return path


WORDS = ["calm", "piano", "loud", "drums", "with", "rain", "a"]


def write_tiny_t5(directory):
    """A 1-layer, 768-wide random T5 encoder (t5-base's width) and a word-level tokenizer ending in </s>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(directory)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=768, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(directory)
    return directory
