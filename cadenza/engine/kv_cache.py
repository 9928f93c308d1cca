"""One static KV cache for every language model (the symbolic REMI LM and the codec LM).

In the spirit of gpt-fast: keys and values are preallocated for the longest sequence of a decode and
written in place at their positions, so every step's shapes are known in advance. Layout, per layer:
one buffer ``kv [B, 2H, S_max, D]``, keys in heads ``0..H-1`` and values in ``H..2H-1``, so a one-token
step writes a position's keys and values with a single copy (the symbolic model's lean Python step and
its C++ step rely on it).

``LayerCaches`` holds the caches of a model's layers across decode calls: a *static* set (fixed shapes
for a compiled / CUDA-graphed step) is kept when a decode ends and handed to the next one of the same
shape, so the tensors a CUDA graph captured keep their addresses.
"""

from __future__ import annotations

import torch
from torch import nn


def mark_static(*tensors: torch.Tensor) -> None:
    """Tell ``torch.compile`` these tensors keep their address across calls (no copy into a CUDA graph's
    own input buffers at every replay); harmless where nothing is compiled."""
    for t in tensors:
        torch._dynamo.mark_static_address(t)


class KVCache(nn.Module):
    """One attention layer's preallocated keys/values, ``[B, H, S_max, D]`` each, in one buffer ``kv``.

    ``update`` writes at ``input_pos`` in place. A module so that it moves with its layer; the buffer
    is not persistent, so checkpoints never see it.
    """

    def __init__(self, batch_size: int, n_heads: int, max_seq_len: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device | str, *, static: bool = False) -> None:
        super().__init__()
        self.n_heads = n_heads
        kv = torch.zeros(batch_size, 2 * n_heads, max_seq_len, head_dim, dtype=dtype, device=device)
        if static:
            mark_static(kv)
        self.register_buffer("kv", kv, persistent=False)

    @property
    def k(self) -> torch.Tensor:
        """Keys ``[B, H, S_max, D]`` (a view of ``kv``)."""
        return self.kv.narrow(1, 0, self.n_heads)

    @property
    def v(self) -> torch.Tensor:
        """Values ``[B, H, S_max, D]`` (a view of ``kv``)."""
        return self.kv.narrow(1, self.n_heads, self.n_heads)

    def fits(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> bool:
        """Whether this cache can serve a decode asking for ``kv`` of ``shape``, ``dtype`` on ``device``."""
        return tuple(self.kv.shape) == tuple(shape) and self.kv.dtype == dtype and self.kv.device == device

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v [B, H, T, D]`` at positions ``input_pos [T]`` (cast to the cache's dtype); return
        the whole cache's keys and values ``[B, H, S_max, D]``."""
        # Fresh views after each write: a view taken before a write of tensors that require grad would be
        # stale for autograd (the general path runs with gradients in parity tests).
        self.k.index_copy_(2, input_pos, k.to(self.kv.dtype))
        self.v.index_copy_(2, input_pos, v.to(self.kv.dtype))
        return self.k, self.v


class LayerCaches:
    """The KV caches of a model's ``n_layers`` layers, one decode at a time.

    ``setup`` hands out one ``KVCache`` per layer; ``release`` ends the decode. With ``static`` the set
    is kept and the next ``setup`` asking for the same shape, dtype and device gets the same tensors
    back (their addresses stay put, so a captured CUDA graph stays valid); otherwise it is let go.
    """

    def __init__(self, n_layers: int, n_heads: int, head_dim: int) -> None:
        self.n_layers, self.n_heads, self.head_dim = n_layers, n_heads, head_dim
        self.static = False
        self.active: list[KVCache] | None = None
        self.spare: list[KVCache] | None = None  # a static set kept between decodes for reuse

    def setup(self, batch_size: int, max_seq_len: int, dtype: torch.dtype, device: torch.device,
              static: bool) -> list[KVCache]:
        """Caches for ``batch_size`` rows of up to ``max_seq_len`` positions (``device`` as a
        ``torch.device`` with its index: ``cuda:0``, not ``cuda``)."""
        self.static = static
        shape = (batch_size, 2 * self.n_heads, max_seq_len, self.head_dim)
        caches, self.spare = self.spare, None
        if caches is None or not caches[0].fits(shape, dtype, device):
            caches = [KVCache(batch_size, self.n_heads, max_seq_len, self.head_dim, dtype, device, static=static)
                      for _ in range(self.n_layers)]
        self.active = caches
        return caches

    def release(self) -> None:
        """End the decode: a static set is kept for the next ``setup``."""
        if self.static and self.active is not None:
            self.spare = self.active
        self.active = None
