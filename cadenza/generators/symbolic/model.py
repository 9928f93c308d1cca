"""The symbolic model: a decoder-only Transformer over REMI tokens, in one readable file.

Llama-shaped on purpose (pre-norm RMSNorm, rotary positions, SwiGLU MLP, no biases, tied embeddings),
so the same weights load into ``transformers.LlamaForCausalLM`` for parity checks and benchmarks.
The KV cache is the engine's static one (``cadenza.engine.kv_cache``), in the spirit of gpt-fast: the
engine's decode loop calls ``setup_cache`` once, then ``forward(tokens, input_pos)`` for the prompt and
for each new token.

Two paths, one entry: ``forward`` is the prefill / training / static (compiled, CUDA-graphed) path; a
one-token step of a float32 CPU model is handed to the ``StepImpl`` chosen at ``setup_cache`` (``step.py``:
the C++ step where built, else its Python form), which runs the same maths with far fewer ops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cadenza.engine.cpp_kernel import parameters_key
from cadenza.engine.kv_cache import KVCache, LayerCaches
from cadenza.generators.symbolic.step import StepImpl, StepWeights, build_step_weights, make_step


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
        self.kv_caches = LayerCaches(config.n_layers, config.n_heads, config.head_dim)
        self._static = False  # set by setup_cache: fixed shapes for a compiled / CUDA-graphed step
        self._step_weights: StepWeights | None = None  # derived from the parameters, kept while they hold
        self._step_impl: StepImpl | None = None  # the one-token step over ``_step_weights``
        self.step_impl: StepImpl | None = None  # ``_step_impl`` while a cache is set up for it, else None
        self.apply(self._init_weights)

    def __getstate__(self) -> dict:
        # The C++ step object cannot be copied or pickled; a copy builds its own at its next setup_cache
        # (its parameters are new objects, so the step weights' key no longer matches).
        state = dict(super().__getstate__())
        state["_step_weights"] = state["_step_impl"] = state["step_impl"] = None
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
        prefix only, and a float32 CPU model hands one-token steps to ``step_impl``.
        """
        if max_seq_len > self.config.max_seq_len:
            raise ValueError(f"max_seq_len {max_seq_len} exceeds the model's {self.config.max_seq_len}")
        dtype = dtype or self.embed.weight.dtype
        device = torch.empty(0, device=device or self.embed.weight.device).device  # "cuda" -> "cuda:0"
        self._static = device.type != "cpu" if static is None else static
        caches = self.kv_caches.setup(batch_size, max_seq_len, dtype, device, self._static)
        for layer, cache in zip(self.layers, caches):
            layer.attn.kv_cache = cache
        if tuple(self.causal_mask.shape) != (max_seq_len, max_seq_len) or self.causal_mask.device != device:
            self.causal_mask = torch.tril(torch.ones(max_seq_len, max_seq_len, dtype=torch.bool, device=device))
        weight = self.embed.weight
        if not self._static and weight.device.type == "cpu" and weight.dtype == torch.float32 and dtype == torch.float32:
            key = parameters_key(self)
            if self._step_weights is None or key is None or self._step_weights.key != key:
                self._step_weights = build_step_weights(self, key)
                self._step_impl = make_step(self._step_weights)
            self._step_impl.set_caches([cache.kv for cache in caches])
            self.step_impl = self._step_impl
        else:
            self._step_weights = self._step_impl = self.step_impl = None

    def clear_cache(self) -> None:
        """Detach the KV cache from the layers; a static cache is kept for the next ``setup_cache``."""
        self.kv_caches.release()
        for layer in self.layers:
            layer.attn.kv_cache = None
        if self.step_impl is not None:  # the step and its weights stay: the next setup_cache reuses them
            self.step_impl.set_caches([])
            self.step_impl = None

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, T, V]`` for ``tokens [B, T]`` at positions ``input_pos [T]`` (or 0..T-1)."""
        if (input_pos is not None and tokens.shape[1] == 1 and self.step_impl is not None
                and not torch.is_grad_enabled()):
            return self.step_impl(tokens.view(-1), int(input_pos)).unsqueeze(1)
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

