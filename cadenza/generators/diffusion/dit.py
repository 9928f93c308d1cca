"""The Stable Audio DiT and its condition projections, in plain torch (no diffusers at run time).

Same architecture and the same parameter names as diffusers' ``StableAudioDiTModel`` and
``StableAudioProjectionModel`` (so a state dict moves between the two unchanged; a test checks both give
the same outputs on random weights), written here because importing those classes costs a cold start
1-2 s of diffusers' and transformers' package scans for what is a few hundred lines of torch:

- time: Gaussian Fourier features of the time (``cos`` first), then a 2-layer SiLU MLP;
- a global token: the projected timing embedding plus the time embedding, prepended to the tokens;
- blocks: pre-norm self-attention with rotary embeddings on the first ``rotary_dim`` channels of each
  head, pre-norm cross-attention to the (projected) condition tokens with a key mask, a SwiGLU
  feed-forward (4x); residual around each;
- 1x1 convolutions with a residual before ``proj_in`` and after ``proj_out``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rotary_tables(rotary_dim: int, length: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)``, each ``[length, rotary_dim]`` float32: positions 0..length-1, each frequency
    ``theta ** (-2i / rotary_dim)`` once per half (the "split halves" layout, not interleaved)."""
    freqs = 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))
    angles = torch.outer(torch.arange(length), freqs)
    return torch.cat([angles.cos(), angles.cos()], dim=-1).float(), torch.cat([angles.sin(), angles.sin()], dim=-1).float()


def apply_rotary(x: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``x [B, H, S, D]`` with its first ``R`` channels rotated by ``tables`` (``[S, R]`` each; halves
    ``x[:R/2]`` and ``x[R/2:R]`` are the real and imaginary parts); the rest pass through."""
    cos, sin = tables
    rot = cos.shape[-1]
    head, tail = x[..., :rot].float(), x[..., rot:]
    real, imag = head.reshape(*head.shape[:-1], 2, -1).unbind(-2)
    turned = torch.cat([-imag, real], dim=-1)
    rotated = head * cos.to(x.device) + turned * sin.to(x.device)
    return torch.cat([rotated.to(x.dtype), tail], dim=-1)


class Attention(nn.Module):
    """Multi-head attention with grouped key/value heads; ``to_out`` keeps diffusers' two-slot layout."""

    def __init__(self, dim: int, heads: int, head_dim: int, kv_heads: int | None = None,
                 context_dim: int | None = None) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.kv_heads = kv_heads or heads
        self.to_q = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, self.kv_heads * head_dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, self.kv_heads * head_dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(heads * head_dim, dim, bias=False), nn.Identity()])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``x [B, S, dim]``, ``context [B, T, context_dim]`` (None: self-attention), ``key_mask [B, T]``
        bool (True: attend), ``rotary`` tables for self-attention -> ``[B, S, dim]``."""
        b = x.shape[0]
        source = x if context is None else context
        q = self.to_q(x).view(b, -1, self.heads, self.head_dim).transpose(1, 2)
        k = self.to_k(source).view(b, -1, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.to_v(source).view(b, -1, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        if rotary is not None:
            q = apply_rotary(q, rotary)
            if context is None:
                k = apply_rotary(k, rotary)
        mask = None if key_mask is None else key_mask.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.to_out[0](out.transpose(1, 2).reshape(b, -1, self.heads * self.head_dim))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.silu(gate)


class FeedForward(nn.Module):
    """``net``: SwiGLU, (dropout slot), output projection: diffusers' ``FeedForward`` layout."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([SwiGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, kv_heads: int, context_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.attn2 = Attention(dim, heads, head_dim, kv_heads=kv_heads, context_dim=context_dim)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None,
                rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), rotary=rotary)
        x = x + self.attn2(self.norm2(x), context=context, key_mask=context_mask)
        return x + self.ff(self.norm3(x))


class FourierTime(nn.Module):
    """``t [B] -> [B, 2 * size]``: ``cos`` then ``sin`` of ``2 pi t w`` for fixed random ``w``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size), requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * t[:, None] @ self.weight[None, :]
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


class StableAudioDiT(nn.Module):
    """``forward(tokens [B, C_in, S], time [B], context [B, T, context_in], global_states [B, 1, G],
    rotary (cos, sin) [S + 1, R], context_mask [B, T]) -> [B, C_out, S]``."""

    def __init__(self, in_channels: int, out_channels: int, layers: int, heads: int, head_dim: int, kv_heads: int,
                 context_dim: int, context_in_dim: int, global_dim: int, time_proj_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.time_proj = FourierTime(time_proj_dim // 2)
        self.timestep_proj = nn.Sequential(nn.Linear(time_proj_dim, inner), nn.SiLU(), nn.Linear(inner, inner))
        self.global_proj = nn.Sequential(nn.Linear(global_dim, inner, bias=False), nn.SiLU(),
                                         nn.Linear(inner, inner, bias=False))
        self.cross_attention_proj = nn.Sequential(nn.Linear(context_in_dim, context_dim, bias=False), nn.SiLU(),
                                                  nn.Linear(context_dim, context_dim, bias=False))
        self.preprocess_conv = nn.Conv1d(in_channels, in_channels, 1, bias=False)
        self.proj_in = nn.Linear(in_channels, inner, bias=False)
        self.transformer_blocks = nn.ModuleList(
            [DiTBlock(inner, heads, head_dim, kv_heads, context_dim) for _ in range(layers)])
        self.proj_out = nn.Linear(inner, out_channels, bias=False)
        self.postprocess_conv = nn.Conv1d(out_channels, out_channels, 1, bias=False)

    def forward(self, tokens: torch.Tensor, time: torch.Tensor, context: torch.Tensor, global_states: torch.Tensor,
                rotary: tuple[torch.Tensor, torch.Tensor], context_mask: torch.Tensor | None = None) -> torch.Tensor:
        context = self.cross_attention_proj(context)
        dtype = self.proj_in.weight.dtype
        global_token = self.global_proj(global_states) + self.timestep_proj(self.time_proj(time.to(dtype)))[:, None]
        x = self.proj_in((self.preprocess_conv(tokens) + tokens).transpose(1, 2))
        x = torch.cat([global_token, x], dim=1)
        for block in self.transformer_blocks:
            x = block(x, context, context_mask, rotary)
        x = self.proj_out(x).transpose(1, 2)[:, :, 1:]
        return self.postprocess_conv(x) + x


class NumberEmbedding(nn.Module):
    """``x [...] -> [..., 2 * half + 1]``: ``x``, then ``sin`` and ``cos`` of ``2 pi x w`` (learnt ``w``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(dim // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., None]
        angles = x * self.weights[None] * 2 * math.pi
        return torch.cat([x, angles.sin(), angles.cos()], dim=-1)


class NumberConditioner(nn.Module):
    """Seconds ``[B]`` (clamped to ``[low, high]``, scaled to [0, 1]) -> ``[B, 1, dim]``."""

    def __init__(self, dim: int, low: float, high: float, internal: int = 256) -> None:
        super().__init__()
        self.time_positional_embedding = nn.Sequential(NumberEmbedding(internal), nn.Linear(internal + 1, dim))
        self.dim, self.low, self.high = dim, low, high

    def forward(self, seconds: torch.Tensor) -> torch.Tensor:
        scaled = (seconds.clamp(self.low, self.high) - self.low) / (self.high - self.low)
        scaled = scaled.to(self.time_positional_embedding[1].weight.dtype)
        return self.time_positional_embedding(scaled).view(-1, 1, self.dim)


class ConditionProjection(nn.Module):
    """Text states to the condition width, and start / end seconds to one token each (Stable Audio's)."""

    def __init__(self, text_dim: int, cond_dim: int, low: float, high: float) -> None:
        super().__init__()
        self.text_projection = nn.Identity() if text_dim == cond_dim else nn.Linear(text_dim, cond_dim)
        self.start_number_conditioner = NumberConditioner(cond_dim, low, high)
        self.end_number_conditioner = NumberConditioner(cond_dim, low, high)

    def text(self, states: torch.Tensor) -> torch.Tensor:
        """``[B, S, text_dim] -> [B, S, cond_dim]``."""
        return self.text_projection(states)

    def seconds(self, start: torch.Tensor, end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``start [B]``, ``end [B]`` -> two ``[B, 1, cond_dim]``."""
        return self.start_number_conditioner(start), self.end_number_conditioner(end)
