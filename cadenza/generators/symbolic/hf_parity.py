"""Our symbolic Transformer's weights, loaded into ``transformers.LlamaForCausalLM``.

The model is Llama-shaped on purpose, so the mapping is 1:1. It serves two jobs: a parity test (same
logits from both implementations proves our attention, RoPE and norms are right) and the decode
benchmark, which times HF ``generate`` against our engine on identical weights.
"""

from __future__ import annotations

import torch

from cadenza.generators.symbolic.model import SymbolicTransformer


def llama_config(model: SymbolicTransformer):
    """The ``transformers.LlamaConfig`` with the same shape as ``model``; built in code, no hub."""
    from transformers import LlamaConfig  # optional heavy import, only parity checks need it

    c = model.config
    return LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.dim,
        intermediate_size=c.ffn_dim,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_heads,
        head_dim=c.head_dim,
        hidden_act="silu",
        max_position_embeddings=c.max_seq_len,
        rms_norm_eps=c.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        # No special tokens: generation length is driven by the caller, never by an implicit EOS.
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def llama_state_dict(model: SymbolicTransformer) -> dict[str, torch.Tensor]:
    """Our parameters renamed to ``LlamaForCausalLM`` keys (tensors are shared, not copied)."""
    sd: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": model.embed.weight,
        "model.norm.weight": model.norm.weight,
        "lm_head.weight": model.lm_head.weight,
    }
    for i, layer in enumerate(model.layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = layer.attn_norm.weight
        sd[p + "post_attention_layernorm.weight"] = layer.mlp_norm.weight
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[p + f"self_attn.{name}.weight"] = getattr(layer.attn, name).weight
        for name in ("gate_proj", "up_proj", "down_proj"):
            sd[p + f"mlp.{name}.weight"] = getattr(layer.mlp, name).weight
    return sd


def to_llama(model: SymbolicTransformer, attn_implementation: str = "sdpa"):
    """A ``LlamaForCausalLM`` (eval mode, same dtype and device) whose logits equal ``model``'s.

    The weights are copied, so later changes to ``model`` do not leak into the returned model.
    """
    from transformers import LlamaForCausalLM

    weight = model.embed.weight
    config = llama_config(model)
    config._attn_implementation = attn_implementation
    hf = LlamaForCausalLM(config).to(dtype=weight.dtype, device=weight.device)
    missing, unexpected = hf.load_state_dict(
        {k: v.detach().clone() for k, v in llama_state_dict(model).items()}, strict=False
    )
    # Only buffers such as rotary inv_freq may be absent from our mapping; any weight left out is a bug.
    real_missing = [k for k in missing if not k.endswith("inv_freq")]
    if real_missing or unexpected:
        raise RuntimeError(f"Llama mapping mismatch: missing {real_missing}, unexpected {unexpected}")
    hf.tie_weights()
    return hf.eval()
