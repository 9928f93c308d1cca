"""Load MusicGen checkpoints in audiocraft's release layout onto our `CodecLM`.

A release directory holds ``state_dict.bin`` (the LM: ``best_state`` + YAML ``xp.cfg``) and
``compression_state_dict.bin`` (the EnCodec model, same shape). Both are pickles: they are read with
``torch.load(weights_only=True)`` (tensors, dicts, strings and numbers only; anything else is refused)
and, when a manifest pins them, only after their sha256 matched. The LM's weights are renamed onto
`CodecLM`; the conditioners go to `AudiocraftConditioning`; the compression model is rebuilt by
audiocraft's builders (and wrapped for stereo / codebook count exactly as audiocraft's ``GenModel`` does).
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from cadenza.errors import CheckpointError
from cadenza.fileio.hashes import cached_sha256  # release files are GBs: hashed once per size and mtime
from cadenza.generators.codec_lm.lm import CodecLMConfig


#: Cache positions one audiocraft LM may use (sinusoidal positions have no learned limit; this bounds
#: the preallocated KV cache: 30 s at 50 Hz + the melody prefix + delays fits with room to spare).
AUDIOCRAFT_MAX_SEQ_LEN = 4096


def load_release_pickle(path: str | os.PathLike, sha256: str | None = None, mmap: bool = False) -> dict:
    """``torch.load(path, weights_only=True)`` of an audiocraft export (after checking ``sha256`` if
    given); raises CheckpointError when the file is missing, altered or holds more than plain data.
    ``mmap``: map tensors lazily (cheap when only ``xp.cfg`` is needed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing from {path.parent} (an audiocraft MusicGen directory "
                              "holds state_dict.bin and compression_state_dict.bin)")
    if sha256 is not None and cached_sha256(path) != sha256:
        raise CheckpointError(f"{path}: sha256 does not match the manifest; the file is corrupt or was replaced")
    try:
        try:
            pkg = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            pkg = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) files cannot mmap
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a plain audiocraft export (tensors, dicts and strings only); "
                              f"refusing to unpickle it: {exc}") from exc
    if not isinstance(pkg, dict) or ("best_state" not in pkg and "pretrained" not in pkg):
        raise CheckpointError(f"{path} does not look like an audiocraft export (no 'best_state')")
    return pkg


def xp_cfg(pkg: dict, path_name: str):
    """The omegaconf config stored in an export's ``xp.cfg`` (YAML text, or a plain dict)."""
    from omegaconf import OmegaConf

    cfg = pkg.get("xp.cfg")
    if cfg is None:
        raise CheckpointError(f"{path_name} has no 'xp.cfg' (the config needed to rebuild the model)")
    return OmegaConf.create(cfg)


def lm_config_from_cfg(cfg) -> CodecLMConfig:
    """Map audiocraft's ``transformer_lm`` / ``codebooks_pattern`` / ``fuser`` config onto ours;
    refuse options our module does not implement (rather than computing something else)."""
    tl = cfg.transformer_lm
    unsupported = {
        "positional_embedding": (tl.get("positional_embedding", "sin"), "sin"),
        "layer_scale": (tl.get("layer_scale"), None), "past_context": (tl.get("past_context"), None),
        "qk_layer_norm": (bool(tl.get("qk_layer_norm", False)), False),
        "qk_layer_norm_cross": (bool(tl.get("qk_layer_norm_cross", False)), False),
        "kv_repeat": (int(tl.get("kv_repeat", 1)), 1), "norm": (tl.get("norm", "layer_norm"), "layer_norm"),
        "causal": (bool(tl.get("causal", True)), True),
    }
    for key, (value, wanted) in unsupported.items():
        if value != wanted:
            raise CheckpointError(f"transformer_lm.{key}={value!r} is not supported (only {wanted!r})")
    pattern = cfg.codebooks_pattern
    if pattern.modeling != "delay":
        raise CheckpointError(f"codebooks pattern {pattern.modeling!r} is not supported (only 'delay')")
    delay_args = pattern.get("delay") or {}
    if int(delay_args.get("flatten_first", 0)) or int(delay_args.get("empty_initial", 0)):
        raise CheckpointError("delay pattern options flatten_first / empty_initial are not supported")
    n_q = int(tl.n_q)
    delays = delay_args.get("delays")
    fuser = cfg.fuser
    return CodecLMConfig(
        n_q=n_q, card=int(tl.card), dim=int(tl.dim), num_heads=int(tl.num_heads), num_layers=int(tl.num_layers),
        ffn_dim=int(tl.get("hidden_scale", 4) * tl.dim),
        cross_attention=bool(tl.get("cross_attention", False)) or len(fuser.get("cross") or []) > 0,
        cond_dim=None, norm_first=bool(tl.get("norm_first", False)), bias_attn=bool(tl.get("bias_attn", True)),
        bias_ff=bool(tl.get("bias_ff", True)), bias_proj=bool(tl.get("bias_proj", True)),
        activation=str(tl.get("activation", "relu")), max_period=float(tl.get("max_period", 10_000)),
        positional_scale=float(tl.get("positional_scale", 1.0)),
        cross_attention_pos_emb=bool(fuser.get("cross_attention_pos_emb", False)),
        cross_attention_pos_emb_scale=float(fuser.get("cross_attention_pos_emb_scale", 1.0)),
        delays=tuple(int(d) for d in delays) if delays is not None else None,
        max_seq_len=AUDIOCRAFT_MAX_SEQ_LEN)


_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.(.+)$")
_ATTN = {"self_attn": "self_attn", "cross_attention": "cross_attn"}
_ATTN_PARAMS = {"in_proj_weight": "in_proj.weight", "in_proj_bias": "in_proj.bias",
                "out_proj.weight": "out_proj.weight", "out_proj.bias": "out_proj.bias"}


def lm_state_from_audiocraft(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """audiocraft ``LMModel`` state names -> `CodecLM` names (conditioner entries are left out; both
    the custom attention names and torch ``MultiheadAttention``'s ``.mha.`` names are accepted)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("condition_provider.") or key.startswith("fuser."):
            continue
        match = _LAYER.match(key)
        if match is None:
            if re.match(r"^(emb|linears)\.\d+\.(weight|bias)$", key) or key.startswith("out_norm."):
                out[key] = value
                continue
            raise CheckpointError(f"unexpected LM weight {key!r} in state_dict.bin")
        layer, rest = match.groups()
        module, _, param = rest.partition(".")
        if module in _ATTN:
            param = param.removeprefix("mha.")
            if param not in _ATTN_PARAMS:
                raise CheckpointError(f"unexpected attention weight {key!r} in state_dict.bin")
            out[f"layers.{layer}.{_ATTN[module]}.{_ATTN_PARAMS[param]}"] = value
        elif module in ("linear1", "linear2", "norm1", "norm2", "norm_cross"):
            out[f"layers.{layer}.{rest}"] = value
        else:
            raise CheckpointError(f"unexpected LM weight {key!r} in state_dict.bin")
    return out


@dataclass
class AudiocraftRelease:
    """What a release directory holds, read and validated (nothing built on a device yet)."""

    directory: Path
    lm_cfg: object
    lm_config: CodecLMConfig
    lm_state: dict[str, torch.Tensor]
    compression_pkg: dict

    @property
    def segment_duration(self) -> float:
        return float(self.lm_cfg.dataset.segment_duration)

    @property
    def cfg_coef(self) -> float:
        return float(self.lm_cfg.classifier_free_guidance.get("inference_coef", 3.0))

    @property
    def stereo(self) -> bool:
        stereo = self.lm_cfg.get("interleave_stereo_codebooks")
        return bool(stereo is not None and stereo.get("use", False))


def read_release(lm_path: str | os.PathLike, compression_path: str | os.PathLike | None = None,
                 lm_sha256: str | None = None, compression_sha256: str | None = None) -> AudiocraftRelease:
    """Read both pickles of a release (sha256-checked when given) and map the LM config.
    ``lm_path`` may be the release directory itself (then the standard file names are used)."""
    lm_path = Path(lm_path)
    if lm_path.is_dir():
        directory = lm_path
        lm_path, compression_path = directory / "state_dict.bin", directory / "compression_state_dict.bin"
    elif compression_path is None:
        raise ValueError("give the release directory, or both the LM and the compression file")
    lm_pkg = load_release_pickle(lm_path, lm_sha256)
    compression_pkg = load_release_pickle(compression_path, compression_sha256)
    cfg = xp_cfg(lm_pkg, lm_path.name)
    return AudiocraftRelease(directory=lm_path.parent, lm_cfg=cfg, lm_config=lm_config_from_cfg(cfg),
                             lm_state=lm_pkg["best_state"], compression_pkg=compression_pkg)


def build_compression_model(release: AudiocraftRelease, device: str | torch.device = "cpu"):
    """audiocraft's ``CompressionModel`` from the export, wrapped (stereo interleave, active codebooks)
    as ``GenModel`` wraps it for this LM config."""
    from cadenza.compat import import_audiocraft

    import_audiocraft()
    from audiocraft.models import builders

    pkg = release.compression_pkg
    if "pretrained" in pkg:
        raise CheckpointError(f"{release.directory}/compression_state_dict.bin only names a pretrained codec "
                              f"({pkg['pretrained']!r}) instead of holding its weights; that form is not supported offline")
    cfg = xp_cfg(pkg, "compression_state_dict.bin")
    cfg.device = "cpu"
    model = builders.get_compression_model(cfg)
    try:
        model.load_state_dict(pkg["best_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"compression_state_dict.bin does not match its own config: {exc}") from exc
    model = builders.get_wrapped_compression_model(model.eval(), release.lm_cfg)
    return model.to(device).eval()
