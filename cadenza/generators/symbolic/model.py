"""The symbolic model: a decoder-only Transformer over REMI tokens, in one readable file.

Llama-shaped on purpose (pre-norm RMSNorm, rotary positions, SwiGLU MLP, no biases, tied embeddings),
so the same weights load into ``transformers.LlamaForCausalLM`` for parity checks and benchmarks.
The KV cache is preallocated (static shapes), in the spirit of gpt-fast: the engine's decode loop
calls ``setup_cache`` once, then ``forward(tokens, input_pos)`` for the prompt and for each new token.

At batch 1 a one-token step of a model this small is almost all per-op overhead, so on CPU that step
takes a lean path (``SymbolicTransformer._step_one``): q/k/v and gate/up fused into one matmul each,
norm weights folded into the next matmul, RoPE as one multiply-add, cache writes by position and
attention over the filled prefix without a mask. Its weights (``StepWeights``) are derived from the
parameters at ``setup_cache`` and rebuilt whenever a parameter changes; the checkpoint format and the
modules (training, HF parity) are untouched. Where the C++ form of that step has been built
(``step_kernel.py``, done by ``scripts/setup.sh``) it runs instead, on the same ``StepWeights``: the
small ops become plain loops, which leaves the step bound by reading its weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    """Shape of the symbolic Transformer. Stored in the checkpoint manifest under ``config``."""

    vocab_size: int
    dim: int = 256
    n_layers: int = 6
    n_heads: int = 4
    ffn_dim: int = 768
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache(nn.Module):
    """Preallocated keys/values ``[B, H, S_max, D]``; ``update`` writes at ``input_pos`` in place.

    Both live in one buffer ``kv [B, 2H, S_max, D]`` (keys in the first ``H`` heads) so the one-token
    step writes a position's keys and values with a single copy.
    """

    def __init__(self, batch_size: int, n_heads: int, max_seq_len: int, head_dim: int, dtype: torch.dtype, device) -> None:
        super().__init__()
        shape = (batch_size, 2 * n_heads, max_seq_len, head_dim)
        self.n_heads = n_heads
        self.register_buffer("kv", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    @property
    def k(self) -> torch.Tensor:
        return self.kv.narrow(1, 0, self.n_heads)

    @property
    def v(self) -> torch.Tensor:
        return self.kv.narrow(1, self.n_heads, self.n_heads)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v [B, H, T, D]`` at positions ``input_pos [T]``; return the full cache tensors."""
        self.k.index_copy_(2, input_pos, k)
        self.v.index_copy_(2, input_pos, v)
        return self.k, self.v


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables ``[S_max, D]`` in the half-split layout HF Llama uses."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, T, D]`` by the tables ``cos, sin [T, D]``."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.k_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.v_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.o_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                input_pos: torch.Tensor | None, kv_len: int | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.kv_cache is not None and input_pos is not None:
            k, v = self.kv_cache.update(input_pos, k, v)
            if kv_len is not None:  # attend over the filled part of the cache only (see SymbolicTransformer)
                k, v = k[:, :, :kv_len], v[:, :, :kv_len]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.up_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.down_proj = nn.Linear(config.ffn_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.dim, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = FeedForward(config)

    def forward(self, x, cos, sin, mask, input_pos, kv_len=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, input_pos, kv_len)
        return x + self.mlp(self.mlp_norm(x))


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
    """Inference-only weights and tables for ``SymbolicTransformer._step_one`` (CPU, float32).

    ``embed [V, dim]`` is the embedding itself (not a copy); ``head [dim, V]`` has the final norm folded
    in; ``cos``/``sin`` are ``[S_max, 3, 1, 2, D/2]``: the RoPE tables split in halves, ``sin`` with the
    rotate-half sign folded in, for q, k and (as the identity: cos 1, sin 0) v, so one multiply-add
    covers the whole fused projection. ``dim_eps`` is ``dim * norm_eps`` as a 0-dim tensor (adding a
    tensor is cheaper than adding a Python float). ``key`` identifies the parameters these were built
    from, so a changed parameter triggers a rebuild.
    """

    key: tuple | None
    embed: torch.Tensor
    blocks: tuple[BlockStepWeights, ...]
    head: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor
    dim_eps: torch.Tensor


def _parameters_key(module: nn.Module) -> tuple | None:
    """What identifies the parameters' current values; None when that cannot be known (inference
    tensors keep no version counter), which means "rebuild"."""
    params = list(module.parameters())
    if any(p.is_inference() for p in params):
        return None
    # In-place updates bump ``_version``; ``.to()`` or ``.data =`` change the storage pointer.
    return tuple((id(p), p.data_ptr(), p._version, p.dtype, p.device) for p in params)


def _rms(x: torch.Tensor, dim_eps: torch.Tensor) -> torch.Tensor:
    """``x [B, dim] / rms(x) / sqrt(dim)``: RMSNorm without its weight and the ``sqrt(dim)`` factor
    (both folded into the next matmul), so a sum replaces the slower mean. ``dim_eps = dim * eps``."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True).add_(dim_eps))


class SymbolicTransformer(nn.Module):
    """Decoder-only LM. ``forward(tokens [B, T], input_pos [T] | None) -> logits [B, T, V]``.

    Without ``input_pos`` it runs a plain causal pass (training). With it, keys/values are written to
    the static cache set up by ``setup_cache`` and queries attend to cache slots ``<= input_pos``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.register_buffer("causal_mask", torch.ones(0, 0, dtype=torch.bool), persistent=False)
        self._step: StepWeights | None = None  # built by setup_cache for the lean CPU step
        self._step_caches: tuple[torch.Tensor, ...] | None = None  # each layer's ``KVCache.kv`` while on
        self._static = False  # set by setup_cache: fixed shapes for a compiled / CUDA-graphed step
        self._spare_caches: list[KVCache] | None = None  # a static cache kept between calls for reuse
        self._kernel = None  # the C++ form of the lean step over ``_step`` (step_kernel.py), when built
        self.apply(self._init_weights)

    def __getstate__(self) -> dict:
        # The C++ step object cannot be copied or pickled; a copy rebuilds it at its next setup_cache
        # (its parameters are new objects, so the step weights' key no longer matches).
        state = dict(super().__getstate__())
        state["_kernel"] = None
        return state

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.config.max_seq_len

    def setup_cache(self, batch_size: int, max_seq_len: int, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None, *, static: bool | None = None) -> None:
        """Preallocate a KV cache for ``batch_size`` sequences of up to ``max_seq_len`` tokens.

        ``static`` (default: True off the CPU) keeps every step's shapes fixed (attention over the
        whole cache under a mask) so a compiled step is one graph that CUDA graphs can replay; the
        cache tensors are then kept by ``clear_cache`` and reused by the next call of the same shape,
        so their addresses stay put too. Not static (the CPU default): steps attend over the filled
        prefix only, and a float32 CPU model takes the lean one-token step.
        """
        if max_seq_len > self.config.max_seq_len:
            raise ValueError(f"max_seq_len {max_seq_len} exceeds the model's {self.config.max_seq_len}")
        dtype = dtype or self.embed.weight.dtype
        device = torch.empty(0, device=device or self.embed.weight.device).device  # "cuda" -> "cuda:0"
        self._static = device.type != "cpu" if static is None else static
        spare = self._spare_caches
        shape = (batch_size, 2 * self.config.n_heads, max_seq_len, self.config.head_dim)
        if spare is not None and tuple(spare[0].kv.shape) == shape and spare[0].kv.dtype == dtype and spare[0].kv.device == device:
            caches = spare
        else:
            caches = [KVCache(batch_size, self.config.n_heads, max_seq_len, self.config.head_dim, dtype, device)
                      for _ in self.layers]
        self._spare_caches = None
        for layer, cache in zip(self.layers, caches):
            layer.attn.kv_cache = cache
        if tuple(self.causal_mask.shape) != (max_seq_len, max_seq_len) or self.causal_mask.device != device:
            self.causal_mask = torch.tril(torch.ones(max_seq_len, max_seq_len, dtype=torch.bool, device=device))
        weight = self.embed.weight
        if not self._static and weight.device.type == "cpu" and weight.dtype == torch.float32 and dtype == torch.float32:
            key = _parameters_key(self)
            if self._step is None or key is None or self._step.key != key:
                self._step = self._build_step_weights(key)
                self._kernel = self._build_kernel(self._step)
            self._step_caches = tuple(layer.attn.kv_cache.kv for layer in self.layers)
            if self._kernel is not None:
                self._kernel.set_caches(list(self._step_caches))
        else:
            self._step = self._step_caches = self._kernel = None

    @torch.no_grad()
    def _build_step_weights(self, key: tuple | None) -> StepWeights:
        """Fuse and transpose the parameters for ``_step_one`` (a copy: about the model's size)."""
        def t(w: torch.Tensor) -> torch.Tensor:
            return w.t().contiguous()

        root_dim = self.config.dim ** 0.5
        blocks = []
        for layer in self.layers:
            attn, mlp = layer.attn, layer.mlp
            qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
            qkv, gate_up = qkv * (layer.attn_norm.weight * root_dim), gate_up * (layer.mlp_norm.weight * root_dim)
            blocks.append(BlockStepWeights(t(qkv), t(attn.o_proj.weight), t(gate_up), t(mlp.down_proj.weight)))
        half = self.config.head_dim // 2
        sign = torch.cat([-torch.ones(half), torch.ones(half)])
        cos, sin = self.rope_cos.view(-1, 1, 2, half), (self.rope_sin * sign).view(-1, 1, 2, half)
        return StepWeights(
            key=key,
            embed=self.embed.weight.detach(),
            blocks=tuple(blocks),
            head=t(self.lm_head.weight * (self.norm.weight * root_dim)),
            cos=torch.stack([cos, cos, torch.ones_like(cos)], dim=1),
            sin=torch.stack([sin, sin, torch.zeros_like(sin)], dim=1),
            dim_eps=torch.tensor(self.config.dim * self.config.norm_eps),
        )

    def _build_kernel(self, step: StepWeights):
        """The C++ step (``step_kernel.SymbolicStep``) over ``step``'s tensors, or None if not built."""
        from cadenza.generators.symbolic import step_kernel

        module = step_kernel.load()
        if module is None:
            return None
        half = self.config.head_dim // 2
        blocks = step.blocks
        return module.SymbolicStep(step.embed, [w.qkv for w in blocks], [w.o for w in blocks],
                                   [w.gate_up for w in blocks], [w.down for w in blocks], step.head,
                                   self.rope_cos[:, :half].contiguous(), self.rope_sin[:, :half].contiguous(),
                                   self.config.n_heads, float(step.dim_eps))

    def _step_one(self, token: torch.Tensor, pos: int) -> torch.Tensor:
        """One new token per row, ``token [B]`` at position ``pos`` -> logits ``[B, V]``.

        The same maths as ``forward`` with a cache (up to float rounding), in as few ops as possible:
        at batch 1 this model's step is bound by per-op overhead and by streaming its weights.
        """
        # C methods (narrow, chunk, select) rather than ``t[...]`` indexing or ``Tensor.split`` (Python
        # wrappers): each costs microseconds, a large share of a step this small.
        step, eps = self._step, self._step.dim_eps
        b = token.shape[0]
        h, d = self.config.n_heads, self.config.head_dim
        cos, sin = step.cos.select(0, pos), step.sin.select(0, pos)  # [3, 1, 2, D/2]
        n = pos + 1  # attend over the filled prefix: every slot <= pos, so no mask is needed
        x = step.embed.index_select(0, token)  # [B, dim]
        for w, cache in zip(step.blocks, self._step_caches):  # cache: [B, 2H, S, D], keys then values
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

    def clear_cache(self) -> None:
        """Detach the KV cache from the layers; a static cache is kept for the next ``setup_cache``."""
        if self._static and self.layers[0].attn.kv_cache is not None:
            self._spare_caches = [layer.attn.kv_cache for layer in self.layers]
        for layer in self.layers:
            layer.attn.kv_cache = None
        self._step_caches = None  # the step weights stay: the next setup_cache reuses them
        if self._kernel is not None:
            self._kernel.set_caches([])

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, T, V]`` for ``tokens [B, T]`` at positions ``input_pos [T]`` (or 0..T-1)."""
        if (input_pos is not None and tokens.shape[1] == 1 and self._step_caches is not None
                and not torch.is_grad_enabled()):
            step = self._kernel or self._step_one
            return step(tokens.view(-1), int(input_pos)).unsqueeze(1)
        kv_len = None
        if input_pos is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
            mask = None
        else:
            positions = input_pos
            if not self._static:
                # On CPU reading the position costs nothing, and attending over the filled slots (rounded up
                # to 64 so shapes repeat) instead of the whole preallocated cache saves most of the attention
                # time early in a long window. A static cache keeps shapes fixed so the step can be graph-captured.
                kv_len = min(self.causal_mask.shape[0], (int(input_pos[-1]) // 64 + 1) * 64)
            mask = self.causal_mask[input_pos][None, None]
            if kv_len is not None:
                mask = mask[..., :kv_len]
        cos = self.rope_cos[positions].to(self.embed.weight.dtype)
        sin = self.rope_sin[positions].to(self.embed.weight.dtype)
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, input_pos, kv_len)
        return self.lm_head(self.norm(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

