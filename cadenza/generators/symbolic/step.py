"""The symbolic model's one-token CPU step: its weights, its Python form, and the choice of the C++ form.

At batch 1 a one-token step of a model this small is almost all per-op overhead, so on CPU (float32,
not static) ``SymbolicTransformer`` hands that step to a ``StepImpl`` chosen once, at ``setup_cache``:
the C++ step (``step_kernel.py``) where it has been built and ``CADENZA_CPU_KERNEL`` is not ``0``, else
``PythonStep``. Both run the same maths on the same ``StepWeights``: q/k/v and gate/up fused into one
matmul each, norm weights folded into the next matmul, RoPE as one multiply-add, cache writes by
position and attention over the filled prefix without a mask. The weights are derived from the
parameters and rebuilt whenever a parameter changes; the checkpoint format and the modules (training,
HF parity) are untouched. ``SymbolicTransformer.forward`` stays the prefill / training / static path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from cadenza.generators.symbolic.model import SymbolicTransformer


class StepImpl(Protocol):
    """One new token per row over a model's KV caches: ``token [B]`` (long) at position ``pos`` -> logits
    ``[B, V]``. ``set_caches`` takes each layer's ``KVCache.kv [B, 2H, S, D]`` (an empty list lets go).
    Not reentrant: one call at a time, as the caches already demand."""

    def set_caches(self, caches: list[torch.Tensor]) -> None: ...

    def __call__(self, token: torch.Tensor, pos: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class BlockStepWeights:
    """One block's weights for the one-token step, laid out ``[in, out]`` for ``x @ w``.

    ``qkv [dim, 3 dim]`` and ``gate_up [dim, 2 ffn]`` have the preceding RMSNorm weight (times
    ``sqrt(dim)``, see ``_rms``) folded in.
    """

    qkv: torch.Tensor
    o: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


@dataclass(frozen=True)
class StepWeights:
    """Inference-only weights and tables for the one-token step (CPU, float32).

    ``embed [V, dim]`` is the embedding itself (not a copy); ``head [dim, V]`` has the final norm folded
    in; ``cos``/``sin`` are ``[S_max, 3, 1, 2, D/2]``: the RoPE tables split in halves, ``sin`` with the
    rotate-half sign folded in, for q, k and (as the identity: cos 1, sin 0) v, so one multiply-add
    covers the whole fused projection; ``cos_half``/``sin_half [S_max, D/2]`` are the plain half tables
    (the C++ step's layout). ``dim_eps`` is ``dim * norm_eps`` as a 0-dim tensor (adding a tensor is
    cheaper than adding a Python float). ``key`` identifies the parameters these were built from, so a
    changed parameter triggers a rebuild.
    """

    key: tuple | None
    n_heads: int
    head_dim: int
    embed: torch.Tensor
    blocks: tuple[BlockStepWeights, ...]
    head: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    cos_half: torch.Tensor
    sin_half: torch.Tensor
    dim_eps: torch.Tensor


@torch.no_grad()
def build_step_weights(model: SymbolicTransformer, key: tuple | None) -> StepWeights:
    """Fuse and transpose ``model``'s parameters for the step (a copy: about the model's size)."""
    def t(w: torch.Tensor) -> torch.Tensor:
        return w.t().contiguous()

    config = model.config
    root_dim = config.dim ** 0.5
    blocks = []
    for layer in model.layers:
        attn, mlp = layer.attn, layer.mlp
        qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        qkv, gate_up = qkv * (layer.attn_norm.weight * root_dim), gate_up * (layer.mlp_norm.weight * root_dim)
        blocks.append(BlockStepWeights(t(qkv), t(attn.o_proj.weight), t(gate_up), t(mlp.down_proj.weight)))
    half = config.head_dim // 2
    sign = torch.cat([-torch.ones(half), torch.ones(half)])
    cos, sin = model.rope_cos.view(-1, 1, 2, half), (model.rope_sin * sign).view(-1, 1, 2, half)
    return StepWeights(
        key=key,
        n_heads=config.n_heads,
        head_dim=config.head_dim,
        embed=model.embed.weight.detach(),
        blocks=tuple(blocks),
        head=t(model.lm_head.weight * (model.norm.weight * root_dim)),
        cos=torch.stack([cos, cos, torch.ones_like(cos)], dim=1),
        sin=torch.stack([sin, sin, torch.zeros_like(sin)], dim=1),
        cos_half=model.rope_cos[:, :half].contiguous(),
        sin_half=model.rope_sin[:, :half].contiguous(),
        dim_eps=torch.tensor(config.dim * config.norm_eps),
    )


def make_step(weights: StepWeights) -> StepImpl:
    """The C++ step over ``weights`` where it is built and enabled (``step_kernel.KERNEL``), else the
    Python one. Token-for-token the same choices; logits agree to float rounding."""
    from cadenza.generators.symbolic import step_kernel

    module = step_kernel.KERNEL.load()
    if module is None:
        return PythonStep(weights)
    blocks = weights.blocks
    return module.SymbolicStep(weights.embed, [w.qkv for w in blocks], [w.o for w in blocks],
                               [w.gate_up for w in blocks], [w.down for w in blocks], weights.head,
                               weights.cos_half, weights.sin_half, weights.n_heads, float(weights.dim_eps))


def _rms(x: torch.Tensor, dim_eps: torch.Tensor) -> torch.Tensor:
    """``x [B, dim] / rms(x) / sqrt(dim)``: RMSNorm without its weight and the ``sqrt(dim)`` factor
    (both folded into the next matmul), so a sum replaces the slower mean. ``dim_eps = dim * eps``."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True).add_(dim_eps))


class PythonStep:
    """The one-token step in as few torch ops as possible (the C++ step's reference and fallback).

    The same maths as ``SymbolicTransformer.forward`` with a cache (up to float rounding): at batch 1
    this model's step is bound by per-op overhead and by streaming its weights.
    """

    def __init__(self, weights: StepWeights) -> None:
        self.weights = weights
        self.caches: tuple[torch.Tensor, ...] = ()

    def set_caches(self, caches: list[torch.Tensor]) -> None:
        if caches and len(caches) != len(self.weights.blocks):
            raise RuntimeError("one cache per layer")
        self.caches = tuple(caches)

    def __call__(self, token: torch.Tensor, pos: int) -> torch.Tensor:
        """``token [B]`` at position ``pos`` -> logits ``[B, V]``."""
        # C methods (narrow, chunk, select) rather than ``t[...]`` indexing or ``Tensor.split`` (Python
        # wrappers): each costs microseconds, a large share of a step this small.
        step, eps = self.weights, self.weights.dim_eps
        if not self.caches:
            raise RuntimeError("set_caches first")
        b = token.shape[0]
        h, d = step.n_heads, step.head_dim
        cos, sin = step.cos.select(0, pos), step.sin.select(0, pos)  # [3, 1, 2, D/2]
        n = pos + 1  # attend over the filled prefix: every slot <= pos, so no mask is needed
        x = step.embed.index_select(0, token)  # [B, dim]
        for w, cache in zip(step.blocks, self.caches):  # cache: [B, 2H, S, D], keys then values
            qkv = torch.mm(_rms(x, eps), w.qkv).view(b, 3, h, 2, d // 2)
            # RoPE in the half-split layout: x * cos + rotate_half(x) * sin, where rotate_half swaps
            # the halves (a flip over the half axis) and ``sin`` carries its sign; v passes unchanged.
            q, kv = torch.addcmul(qkv * cos, qkv.flip(3), sin).view(b, 3 * h, 1, d).split_with_sizes((h, 2 * h), 1)
            cache.narrow(2, pos, 1).copy_(kv)
            k, v = cache.narrow(2, 0, n).chunk(2, 1)
            y = F.scaled_dot_product_attention(q, k, v)
            x = torch.addmm(x, y.view(b, h * d), w.o)
            gate, up = torch.mm(_rms(x, eps), w.gate_up).chunk(2, 1)
            x = torch.addmm(x, F.silu(gate).mul_(up), w.down)
        return torch.mm(_rms(x, eps), step.head)
