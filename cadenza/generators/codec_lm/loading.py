"""Turn a codec LM `CheckpointSpec` into what generation needs: LM, codec, conditioner, window, defaults.

Two manifest formats (``config.format``):

- ``"audiocraft"``: files ``state_dict`` (-> ``state_dict.bin``) and ``compression_state_dict`` (->
  ``compression_state_dict.bin``), audiocraft's release layout, sha256-pinned; loaded by
  ``audiocraft_load`` with ``weights_only=True``. The text encoder (T5) is found locally (see
  ``conditioners.find_t5``).
- ``"cadenza"``: files ``lm`` (-> ``lm.safetensors``, `CodecLM` names) and ``codec`` (->
  ``codec.safetensors``, our SEANet+RVQ codec), with ``config.lm`` (a `CodecLMConfig` dict with
  ``cond_dim`` 384), ``config.codec`` (a ``codec.CodecConfig`` dict) and ``config.text_encoder: "minilm"``
  (``cadenza.tokenizers.text.TextEncoder``). Optional: ``config.window_s`` (longest clip one LM window
  makes; default ``config.train_crop_s``, the training crop, else what ``max_seq_len`` holds) and
  ``config.sampling_defaults`` (``top_k``, ``top_p``, ``cfg_scale``, ``temperature``). The unconditional
  text for CFG is an all-False mask (zero states).
- ``"transformers"``: a transformers ``MusicgenForConditionalGeneration`` folder (files ``weights`` ->
  ``model.safetensors``, ``config`` -> ``config.json``, + tokenizer files); T5 and EnCodec come from the
  same safetensors file (see ``transformers_layout``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch

from cadenza.checkpoints import CheckpointSpec
from cadenza.errors import CheckpointError
from cadenza.generators.codec_lm.conditioners import ConditionInputs
from cadenza.generators.codec_lm.lm import CodecLM, CodecLMConfig

#: MusicGen's generation defaults (audiocraft ``MusicGen.set_generation_params``).
MUSICGEN_DEFAULTS = {"temperature": 1.0, "top_k": 250, "top_p": 1.0, "cfg_scale": 3.0}
#: Fraction of a window kept as context when a piece is longer than one window (MusicGen: 12 s of 30).
OVERLAP_FRACTION = 0.4

# (cross states [N, S, D] or None, their mask [N, S] or None, prefix [N, P, dim] or None)
Conditioned = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


@dataclass
class CodecLMBundle:
    """Everything one loaded codec LM checkpoint needs to generate.

    ``codec``: an audiocraft ``CompressionModel`` (``encode``/``decode``, ``sample_rate``,
    ``frame_rate``, ``channels``, ``cardinality``). ``condition(inputs)``: the conditioning of a decode
    batch (before ``lm.project_conditioning``). ``window_s``: the longest clip one LM window makes.
    ``melody_sample_rate``: the chroma conditioner's rate, None without melody conditioning.
    """

    lm: CodecLM
    codec: Any
    condition: Callable[[ConditionInputs], Conditioned]
    window_s: float
    defaults: dict
    melody_sample_rate: int | None
    has_text: bool


#: Below this many weights an LM is built with real (then replaced) tensors: its random init takes
#: milliseconds, while building on the meta device imports torch._dynamo (~1.4 s of a cold start).
META_INIT_ABOVE = 50_000_000


def _build_lm(config: CodecLMConfig, state: dict[str, torch.Tensor], device: str, name: str) -> CodecLM:
    big = sum(v.numel() for v in state.values()) > META_INIT_ABOVE
    with torch.device("meta") if big else contextlib.nullcontext():
        lm = CodecLM(config)
    state = {k: v.to(device=device, dtype=torch.float32) for k, v in state.items()}
    try:
        lm.load_state_dict(state, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{name}: LM weights do not fit its config: {exc}") from exc
    return lm.eval()


def load_audiocraft(spec: CheckpointSpec, device: str) -> CodecLMBundle:
    from cadenza.generators.codec_lm.audiocraft_load import build_compression_model, lm_state_from_audiocraft, read_release
    from cadenza.generators.codec_lm.conditioners import AudiocraftConditioning, conditioner_state, t5_search_dirs

    lm_path, comp_path = spec.path("state_dict"), spec.path("compression_state_dict")
    release = read_release(lm_path, comp_path, spec.files["state_dict"]["sha256"],
                           spec.files["compression_state_dict"]["sha256"])
    lm = _build_lm(release.lm_config, lm_state_from_audiocraft(release.lm_state), device, spec.name)
    conditioning = AudiocraftConditioning(release.lm_cfg, release.lm_config.dim,
                                          t5_search_dirs(lm_path.parent) + [spec.directory])
    try:
        conditioning.load_state_dict(conditioner_state(release.lm_state))
    except RuntimeError as exc:
        raise CheckpointError(f"{spec.name}: conditioner weights do not fit the config: {exc}") from exc
    conditioning = conditioning.to(device).eval()
    codec = build_compression_model(release, device)
    if codec.num_codebooks != lm.config.n_q or codec.cardinality != lm.config.card:
        raise CheckpointError(f"{spec.name}: the codec gives {codec.num_codebooks} codebooks of {codec.cardinality} "
                              f"but the LM models {lm.config.n_q} of {lm.config.card}")

    def condition(inputs: ConditionInputs) -> Conditioned:
        cross, prefix = conditioning(inputs)
        return cross, None, prefix

    defaults = {**MUSICGEN_DEFAULTS, "cfg_scale": release.cfg_coef}
    return CodecLMBundle(lm=lm, codec=codec, condition=condition, window_s=release.segment_duration,
                         defaults=defaults, melody_sample_rate=conditioning.melody_sample_rate,
                         has_text=bool(conditioning.text_names))


def load_cadenza(spec: CheckpointSpec, device: str) -> CodecLMBundle:
    from cadenza.codec.model import load_codec
    from cadenza.tokenizers.text import TextEncoder

    try:
        config = CodecLMConfig.from_dict(dict(spec.config["lm"]))
        codec_config = spec.config["codec"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{spec.name}: manifest config needs 'lm' and 'codec' dicts ({exc})") from exc
    if spec.config.get("text_encoder", "minilm") != "minilm":
        raise CheckpointError(f"{spec.name}: text encoder {spec.config['text_encoder']!r} is unknown (only 'minilm')")
    lm = _build_lm(config, spec.load_safetensors("lm"), device, spec.name)
    codec = load_codec(spec.path("codec"), codec_config, device=device)
    encoder = TextEncoder().to(device) if config.cross_attention else None
    if encoder is not None and config.cond_dim != encoder.dim:
        raise CheckpointError(f"{spec.name}: the LM expects {config.cond_dim}-d text states, MiniLM gives {encoder.dim}")

    def condition(inputs: ConditionInputs) -> Conditioned:
        if encoder is None:
            return None, None, None
        embedding = encoder([t or "" for t in inputs.texts])
        mask = embedding.mask & torch.tensor([t is not None for t in inputs.texts], device=embedding.mask.device)[:, None]
        return embedding.states, mask, None

    frames = config.max_seq_len - 1 - config.pattern.max_delay
    # The LM never saw positions beyond its training crops: one window is that long unless set.
    window_s = float(spec.config.get("window_s", spec.config.get("train_crop_s", frames / codec.frame_rate)))
    window_s = min(window_s, frames / codec.frame_rate)
    defaults = {**MUSICGEN_DEFAULTS, **spec.config.get("sampling_defaults", {})}
    return CodecLMBundle(lm=lm, codec=codec, condition=condition, window_s=window_s, defaults=defaults,
                         melody_sample_rate=None, has_text=encoder is not None)


def load_transformers(spec: CheckpointSpec, device: str) -> CodecLMBundle:
    from safetensors.torch import load_file

    from cadenza.generators.codec_lm import transformers_layout as hf

    spec.verify()
    directory = spec.path("weights").parent
    config = hf.read_config(directory)
    tensors = load_file(spec.path("weights"))
    lm_config = hf.lm_config_from_hf(config)
    lm = _build_lm(lm_config, hf.lm_state_from_hf(tensors, lm_config), device, spec.name)
    tokenizer, t5 = hf.build_text_encoder(directory, config, tensors)
    t5 = t5.to(device)
    codec = hf.build_codec(config, tensors).to(device)

    def condition(inputs: ConditionInputs) -> Conditioned:
        batch = tokenizer([t or "" for t in inputs.texts], return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            states = t5(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        present = torch.tensor([t is not None for t in inputs.texts], device=device)[:, None]
        return states, batch["attention_mask"].bool() & present, None

    positions = int(config["decoder"].get("max_position_embeddings", 2048)) - 1 - lm_config.pattern.max_delay
    window_s = min(30.0, positions / codec.frame_rate)  # MusicGen was trained on 30 s clips
    return CodecLMBundle(lm=lm, codec=codec, condition=condition, window_s=window_s, defaults=dict(MUSICGEN_DEFAULTS),
                         melody_sample_rate=None, has_text=True)


LOADERS = {"audiocraft": load_audiocraft, "cadenza": load_cadenza, "transformers": load_transformers}


def load_bundle(spec: CheckpointSpec, device: str = "cpu") -> CodecLMBundle:
    """Load ``spec`` (format ``audiocraft``, ``transformers`` or ``cadenza``) onto ``device``."""
    fmt = spec.config.get("format")
    if fmt not in LOADERS:
        raise CheckpointError(f"{spec.name}: codec_lm format {fmt!r} is unknown (expected one of {', '.join(LOADERS)})")
    return LOADERS[fmt](spec, device)
