"""audiocraft configs and the release layout, written the way audiocraft's own export does.

``musicgen_lm_cfg`` / ``encodec_cfg`` build omegaconf configs for audiocraft's builders (tiny random
models for tests, the MusicGen-small shape for the benchmark); ``save_release`` writes
``state_dict.bin`` + ``compression_state_dict.bin`` like ``audiocraft.utils.export`` (a dict with
``best_state``, the YAML ``xp.cfg``, ``version`` and ``exported``), so a directory made here loads
through exactly the path a downloaded MusicGen checkpoint takes. audiocraft is imported lazily.
"""

from __future__ import annotations

import os
from pathlib import Path

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"


def musicgen_lm_cfg(*, n_q: int = 4, card: int = 2048, dim: int = 1024, num_heads: int = 16, num_layers: int = 24,
                    hidden_scale: int = 4, conditioners: dict | None = None, cross: tuple[str, ...] = ("description",),
                    prepend: tuple[str, ...] = (), delays: list[int] | None = None, segment_duration: float = 30.0,
                    stereo: bool = False, cfg_coef: float = 3.0, custom: bool = False):
    """An omegaconf ``DictConfig`` for ``audiocraft.models.builders.get_lm_model`` shaped like MusicGen's
    released configs (pre-norm, no biases, GELU, sinusoidal positions, delay pattern).

    ``conditioners`` maps a condition name to its audiocraft conditioner config (default: a LUT text
    conditioner ``description`` with the ``noop`` tokenizer, which needs no downloads); ``cross`` and
    ``prepend`` name how each is fused. ``stereo`` sets ``interleave_stereo_codebooks`` (n_q counts both
    channels' codebooks, as in the released stereo models).
    """
    from omegaconf import OmegaConf

    if conditioners is None:
        conditioners = {"description": {"model": "lut", "lut": {"n_bins": 64, "dim": 16, "tokenizer": "noop"}}}
    return OmegaConf.create({
        "lm_model": "transformer_lm", "device": "cpu", "dtype": "float32",
        "dataset": {"segment_duration": float(segment_duration)},
        "transformer_lm": {
            "n_q": n_q, "card": card, "dim": dim, "num_heads": num_heads, "num_layers": num_layers,
            "hidden_scale": hidden_scale, "norm": "layer_norm", "norm_first": True, "bias_ff": False,
            "bias_attn": False, "bias_proj": False, "past_context": None, "causal": True, "custom": custom,
            "memory_efficient": False, "attention_as_float32": False, "layer_scale": None,
            "positional_embedding": "sin", "xpos": False, "checkpointing": "none", "weight_init": None,
            "depthwise_init": None, "zero_bias_init": False, "activation": "gelu", "dropout": 0.0,
            "emb_lr": None, "cross_attention": bool(cross)},
        "codebooks_pattern": {"modeling": "delay",
                              "delay": {"delays": list(delays if delays is not None else range(n_q)),
                                        "flatten_first": 0, "empty_initial": 0}},
        "attribute_dropout": {},
        "classifier_free_guidance": {"training_dropout": 0.0, "inference_coef": float(cfg_coef)},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1.0, "sum": [],
                  "prepend": list(prepend), "cross": list(cross), "input_interpolate": []},
        "conditioners": conditioners,
        "interleave_stereo_codebooks": {"use": bool(stereo), "per_timestep": False},
        "compression_model_n_q": None,
    })


def encodec_cfg(*, sample_rate: int = 8000, channels: int = 1, n_q: int = 4, bins: int = 64, dimension: int = 16,
                n_filters: int = 4, ratios: tuple[int, ...] = (5, 4, 4, 2)):
    """An omegaconf ``DictConfig`` for ``builders.get_compression_model``: SEANet + RVQ (EnCodec).
    The frame rate is ``sample_rate / prod(ratios)`` (default 8000 / 160 = 50 Hz, like MusicGen's codec)."""
    from omegaconf import OmegaConf

    return OmegaConf.create({
        "compression_model": "encodec", "device": "cpu", "dtype": "float32",
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": sample_rate, "channels": channels,
                    "causal": False, "renormalize": False},
        "seanet": {"dimension": dimension, "channels": channels, "causal": False, "n_filters": n_filters,
                   "n_residual_layers": 1, "ratios": list(ratios), "activation": "ELU", "norm": "weight_norm",
                   "kernel_size": 7, "last_kernel_size": 7, "residual_kernel_size": 3, "dilation_base": 2,
                   "pad_mode": "constant", "true_skip": True, "compress": 2, "lstm": 0,
                   "disable_norm_outer_blocks": 0, "encoder": {}, "decoder": {}},
        "rvq": {"n_q": n_q, "q_dropout": False, "bins": bins, "decay": 0.99, "kmeans_init": False,
                "kmeans_iters": 10, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0,
                "orthogonal_reg_active_codes_only": False},
    })


def save_release(directory: str | os.PathLike, lm, lm_cfg, compression_model, compression_cfg) -> Path:
    """Write audiocraft's release layout into ``directory``: ``state_dict.bin`` (the LM with its
    conditioners) and ``compression_state_dict.bin`` (the EnCodec model), each ``{best_state, xp.cfg,
    version, exported}``. Returns the directory."""
    import torch
    from omegaconf import OmegaConf

    from cadenza.compat import import_audiocraft

    audiocraft = import_audiocraft()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, model, cfg in ((LM_FILE, lm, lm_cfg), (COMPRESSION_FILE, compression_model, compression_cfg)):
        torch.save({"best_state": model.state_dict(), "xp.cfg": OmegaConf.to_yaml(cfg),
                    "version": audiocraft.__version__, "exported": True}, directory / name)
    return directory


def build_audiocraft_models(lm_cfg, compression_cfg, seed: int = 0):
    """Random audiocraft ``(LMModel, CompressionModel)`` built by audiocraft's builders from the configs."""
    import torch

    from cadenza.compat import import_audiocraft

    import_audiocraft()
    from audiocraft.models import builders

    torch.manual_seed(seed)
    lm = builders.get_lm_model(lm_cfg).eval()
    compression = builders.get_compression_model(compression_cfg).eval()
    return lm, compression
