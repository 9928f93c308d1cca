"""The shared engine: one decode loop, one static KV cache, one denoise loop, logit processors, device policy."""

from cadenza.engine.decode import (
    CausalLM,
    CodebookLM,
    Constraint,
    DecodeParams,
    cfg_combine,
    decode,
    decode_codebooks,
    decode_step,
)
from cadenza.engine.denoise import denoise, rescale_guidance
from cadenza.engine.device import DevicePolicy, maybe_compile, physical_cores, pick_device, pick_dtype, set_threads
from cadenza.engine.kv_cache import KVCache, LayerCaches
from cadenza.engine.patterns import DelayPattern
from cadenza.engine.sampling import (
    EmptyMask,
    apply_allowed_mask,
    apply_bias,
    apply_repetition_penalty,
    apply_temperature,
    sample,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "CausalLM", "CodebookLM", "Constraint", "DecodeParams", "DelayPattern", "DevicePolicy", "EmptyMask", "KVCache", "LayerCaches",
    "apply_allowed_mask", "apply_bias", "apply_repetition_penalty", "apply_temperature", "cfg_combine",
    "decode", "decode_codebooks", "decode_step", "denoise", "maybe_compile", "physical_cores",
    "pick_device", "pick_dtype", "rescale_guidance", "sample", "set_threads", "top_k_filter",
    "top_p_filter",
]
