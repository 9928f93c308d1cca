"""The codec LM's one-frame CPU step in C++ (``step_kernel.cpp``): which models it serves, its weights.

At the CFG batch of 2 a step of the default model (6.4 M parameters) costs about 6 ms through
``CodecLM.forward``, most of it the dispatch of ~90 small modules and ops; the C++ step keeps the 21
matrix products and does the rest in loops (about 2.2 ms). ``CodecLM.setup_cache`` builds it once per parameter state
(``CodecStepWeights``: the matrices transposed to ``[in, out]``, the four heads as one) for a float32 CPU
model whose layers it supports (``supports``), when the kernel is built and enabled; every one-frame
step of a cached decode then runs it. Otherwise the module forward runs, as before. Logits agree to
float rounding (tested), so tokens sampled from them are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from cadenza.generators.codec_lm.lm import CodecLM


#: Most parameters a model may have for the C++ step: its weights are a transposed copy (``CodecStepWeights``),
#: which for MusicGen-medium or -large would be gigabytes more memory for a gain of about 15 % (the products
#: dominate a step that large: ``python -m benchmarks decode_codec``). Small models gain about 2x.
MAX_PARAMETERS = 50_000_000


def supports(lm: CodecLM) -> bool:
    """Whether the C++ step computes ``lm``'s forward: pre-norm layers, no linear biases, GELU or ReLU
    (MusicGen's and our own models), at most ``MAX_PARAMETERS``."""
    config = lm.config
    return (config.norm_first and not (config.bias_attn or config.bias_ff or config.bias_proj)
            and config.activation in ("gelu", "relu") and lm.num_parameters() <= MAX_PARAMETERS)


@dataclass(frozen=True)
class CodecStepWeights:
    """Inference-only weights for the C++ step (CPU, float32), derived from a ``CodecLM``'s parameters.

    ``emb [K, card + 1, D]``; per layer ``qkv [D, 3D]``, ``o``, ``cross_q``, ``cross_o [D, D]`` (empty
    lists without cross-attention), ``ff1 [D, F]``, ``ff2 [F, D]``, ``norms [2 or 3, 2, D]`` (self, cross,
    feed-forward; weight then bias); ``out_norm [2, D]`` (empty without one); ``heads [D, K * card]``;
    ``freq_div [D / 2]``: the sinusoidal positions' divisors. ``key`` identifies the parameters they were
    built from (``cadenza.engine.cpp_kernel.parameters_key``).
    """

    key: tuple | None
    emb: torch.Tensor
    qkv: tuple[torch.Tensor, ...]
    o: tuple[torch.Tensor, ...]
    cross_q: tuple[torch.Tensor, ...]
    cross_o: tuple[torch.Tensor, ...]
    ff1: tuple[torch.Tensor, ...]
    ff2: tuple[torch.Tensor, ...]
    norms: tuple[torch.Tensor, ...]
    out_norm: torch.Tensor
    heads: torch.Tensor
    freq_div: torch.Tensor


@torch.no_grad()
def build_step_weights(lm: CodecLM, key: tuple | None) -> CodecStepWeights:
    """Transpose and stack ``lm``'s parameters for the step (a copy: about the model's size)."""
    def t(w: torch.Tensor) -> torch.Tensor:
        return w.detach().float().t().contiguous()

    def norm_rows(*norms: torch.nn.LayerNorm) -> torch.Tensor:
        return torch.stack([torch.stack([n.weight, n.bias]) for n in norms]).float().contiguous()

    config, dim = lm.config, lm.config.dim
    qkv, o, cross_q, cross_o, ff1, ff2, norms = [], [], [], [], [], [], []
    for layer in lm.layers:
        qkv.append(t(layer.self_attn.in_proj.weight))
        o.append(t(layer.self_attn.out_proj.weight))
        if layer.cross_attn is not None:
            cross_q.append(t(layer.cross_attn.in_proj.weight[:dim]))
            cross_o.append(t(layer.cross_attn.out_proj.weight))
            norms.append(norm_rows(layer.norm1, layer.norm_cross, layer.norm2))
        else:
            norms.append(norm_rows(layer.norm1, layer.norm2))
        ff1.append(t(layer.linear1.weight))
        ff2.append(t(layer.linear2.weight))
    half = dim // 2
    freq_div = config.max_period ** (torch.arange(half, dtype=torch.float32) / (half - 1))
    out_norm = (torch.stack([lm.out_norm.weight, lm.out_norm.bias]).float().contiguous()
                if lm.out_norm is not None else torch.empty(0))
    return CodecStepWeights(
        key=key,
        emb=torch.stack([e.weight for e in lm.emb]).detach().float().contiguous(),
        qkv=tuple(qkv), o=tuple(o), cross_q=tuple(cross_q), cross_o=tuple(cross_o), ff1=tuple(ff1), ff2=tuple(ff2),
        norms=tuple(norms), out_norm=out_norm,
        heads=torch.cat([t(lin.weight) for lin in lm.linears], dim=1).contiguous(),
        freq_div=freq_div.contiguous(),
    )


def make_step(weights: CodecStepWeights, lm: CodecLM) -> Any | None:
    """The C++ step over ``weights``, or None where the kernel is not built or is disabled."""
    from cadenza.generators.codec_lm import step_kernel

    module = step_kernel.KERNEL.load()
    if module is None:
        return None
    w = weights
    return module.CodecStep(w.emb, list(w.qkv), list(w.o), list(w.cross_q), list(w.cross_o), list(w.ff1),
                            list(w.ff2), list(w.norms), w.out_norm, w.heads, w.freq_div,
                            float(lm.config.positional_scale), lm.config.num_heads, lm.config.activation == "gelu")
