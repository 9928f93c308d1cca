"""MusicGen in the transformers layout (``MusicgenForConditionalGeneration``: ``config.json`` +
``model.safetensors`` + tokenizer files) mapped onto the same `CodecLM`.

This layout is self-contained and pickle-free: the T5 text encoder (``text_encoder.*``), the EnCodec
codec (``audio_encoder.*``, wrapped by audiocraft's ``HFEncodecCompressionModel``) and the decoder
(``decoder.*``) all live in the safetensors file, and ``enc_to_dec_proj`` is our ``cond_proj``. The
decoder is MusicGen's (pre-norm, GELU, no biases, sinusoidal positions, delay pattern), so only the
names change. ``musicgen_melody`` (a different conditioning scheme) is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from cadenza.errors import CheckpointError
from cadenza.generators.codec_lm.lm import CodecLMConfig

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json")
_DECODER = "decoder.model.decoder."


def is_transformers_musicgen(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a transformers ``musicgen`` model with single-file safetensors weights."""
    directory = Path(directory)
    if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
        return False
    try:
        return json.loads((directory / CONFIG).read_text()).get("model_type") == "musicgen"
    except (OSError, json.JSONDecodeError):
        return False


def read_config(directory: str | os.PathLike) -> dict:
    try:
        config = json.loads((Path(directory) / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {Path(directory) / CONFIG}: {exc}") from exc
    if config.get("model_type") != "musicgen":
        raise CheckpointError(f"{directory}: model_type {config.get('model_type')!r} is not supported (only 'musicgen')")
    return config


def lm_config_from_hf(config: dict) -> CodecLMConfig:
    """The decoder config (``config["decoder"]``) as a `CodecLMConfig` with ``cond_dim`` = T5's width."""
    dec, text = config["decoder"], config["text_encoder"]
    n_q, channels = int(dec["num_codebooks"]), int(dec.get("audio_channels", 1))
    if channels not in (1, 2):
        raise CheckpointError(f"audio_channels={channels} is not supported")
    per_channel = n_q // channels
    delays = tuple(k for k in range(per_channel) for _ in range(channels)) if channels == 2 else None
    return CodecLMConfig(n_q=n_q, card=int(dec["vocab_size"]), dim=int(dec["hidden_size"]),
                         num_heads=int(dec["num_attention_heads"]), num_layers=int(dec["num_hidden_layers"]),
                         ffn_dim=int(dec["ffn_dim"]), cross_attention=True, cond_dim=int(text["d_model"]),
                         norm_first=True, bias_attn=False, bias_ff=False, bias_proj=False,
                         activation=str(dec.get("activation_function", "gelu")),
                         delays=delays, max_seq_len=4096)


def lm_state_from_hf(tensors: dict[str, torch.Tensor], config: CodecLMConfig) -> dict[str, torch.Tensor]:
    """transformers decoder names -> `CodecLM` names (q/k/v projections packed into ``in_proj``)."""
    out: dict[str, torch.Tensor] = {}
    get = tensors.__getitem__
    try:
        for k in range(config.n_q):
            out[f"emb.{k}.weight"] = get(f"{_DECODER}embed_tokens.{k}.weight")
            out[f"linears.{k}.weight"] = get(f"decoder.lm_heads.{k}.weight")
        for i in range(config.num_layers):
            src, dst = f"{_DECODER}layers.{i}.", f"layers.{i}."
            for hf, ours in (("self_attn", "self_attn"), ("encoder_attn", "cross_attn")):
                out[f"{dst}{ours}.in_proj.weight"] = torch.cat(
                    [get(f"{src}{hf}.{p}_proj.weight") for p in ("q", "k", "v")])
                out[f"{dst}{ours}.out_proj.weight"] = get(f"{src}{hf}.out_proj.weight")
            for hf, ours in (("self_attn_layer_norm", "norm1"), ("encoder_attn_layer_norm", "norm_cross"),
                             ("final_layer_norm", "norm2")):
                out[f"{dst}{ours}.weight"] = get(f"{src}{hf}.weight")
                out[f"{dst}{ours}.bias"] = get(f"{src}{hf}.bias")
            out[f"{dst}linear1.weight"] = get(f"{src}fc1.weight")
            out[f"{dst}linear2.weight"] = get(f"{src}fc2.weight")
        out["out_norm.weight"] = get(f"{_DECODER}layer_norm.weight")
        out["out_norm.bias"] = get(f"{_DECODER}layer_norm.bias")
        out["cond_proj.weight"] = get("enc_to_dec_proj.weight")
        out["cond_proj.bias"] = get("enc_to_dec_proj.bias")
    except KeyError as exc:
        raise CheckpointError(f"{WEIGHTS} lacks the decoder weight {exc.args[0]!r}") from exc
    return out


def _submodel_state(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def build_text_encoder(directory: Path, config: dict, tensors: dict[str, torch.Tensor]):
    """``(tokenizer, T5EncoderModel)`` from the folder's tokenizer files and ``text_encoder.*`` weights."""
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    text_config = {k: v for k, v in config["text_encoder"].items() if k not in ("model_type", "transformers_version")}
    with torch.device("meta"):
        t5 = T5EncoderModel(T5Config(**text_config))
    state = _submodel_state(tensors, "text_encoder.")
    if "shared.weight" in state:
        state.setdefault("encoder.embed_tokens.weight", state["shared.weight"])
    t5.load_state_dict({k: v.float() for k, v in state.items() if k in t5.state_dict()}, strict=True, assign=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{directory}: the T5 tokenizer files ({', '.join(TOKENIZER_FILES)}) are missing "
                              f"or unreadable: {exc}") from exc
    return tokenizer, t5.eval()


def build_codec(config: dict, tensors: dict[str, torch.Tensor]):
    """audiocraft's ``HFEncodecCompressionModel`` around transformers' EnCodec (stereo: interleaved)."""
    from transformers import EncodecConfig, EncodecModel

    from cadenza.compat import import_audiocraft

    import_audiocraft()
    from audiocraft.models.encodec import HFEncodecCompressionModel, InterleaveStereoCompressionModel

    audio_config = {k: v for k, v in config["audio_encoder"].items() if k not in ("model_type", "transformers_version")}
    model = EncodecModel(EncodecConfig(**audio_config))
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in _submodel_state(tensors, "audio_encoder.").items()},
                                                strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{WEIGHTS}: audio_encoder weights do not fit its config (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    codec = HFEncodecCompressionModel(model.eval())
    if int(config["decoder"].get("audio_channels", 1)) == 2:
        codec = InterleaveStereoCompressionModel(codec)
    return codec.eval()
