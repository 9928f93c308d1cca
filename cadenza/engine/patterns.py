"""Codebook interleaving patterns for codec LMs, as small objects (after audiocraft's ``codebooks_patterns``).

MusicGen's delay pattern shifts codebook ``k`` right by ``k`` steps, so at decode step ``s`` the model
predicts codebook 0 of frame ``s``, codebook 1 of frame ``s - 1``, ... : every codebook of a frame is
predicted after the coarser codebooks of that frame, with one forward per step for all ``K``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DelayPattern:
    """Delay interleaving for ``n_codebooks`` (K) parallel token streams.

    Layout: ``seq[:, k, s] = codes[:, k, s - k]`` when ``0 <= s - k < T``, else ``pad_id``.
    """

    n_codebooks: int

    def __post_init__(self) -> None:
        if self.n_codebooks < 1:
            raise ValueError(f"a delay pattern needs at least one codebook, got {self.n_codebooks}")

    @property
    def delays(self) -> tuple[int, ...]:
        """Delay of each codebook, in steps: ``(0, 1, ..., K - 1)``."""
        return tuple(range(self.n_codebooks))

    def sequence_length(self, n_frames: int) -> int:
        """Steps ``S = T + K - 1`` needed to hold ``T`` frames."""
        return n_frames + self.n_codebooks - 1

    def n_frames(self, seq_len: int) -> int:
        """Frames ``T = S - K + 1`` held by a sequence of ``S`` steps."""
        return seq_len - self.n_codebooks + 1

    def build(self, codes: torch.Tensor, pad_id: int) -> torch.Tensor:
        """Interleave ``codes [B, K, T]`` -> ``seq [B, K, T + K - 1]``, ``pad_id`` where no frame exists."""
        b, k, t = codes.shape
        self._check_k(k)
        seq = codes.new_full((b, k, self.sequence_length(t)), pad_id)
        for cb in range(k):
            seq[:, cb, cb : cb + t] = codes[:, cb]
        return seq

    def revert(self, seq: torch.Tensor) -> torch.Tensor:
        """Undo ``build``: ``seq [B, K, S]`` -> ``codes [B, K, S - K + 1]``."""
        b, k, s = seq.shape
        self._check_k(k)
        t = self.n_frames(s)
        if t < 0:
            raise ValueError(f"a sequence of {s} steps is shorter than the {k - 1}-step delay")
        return torch.stack([seq[:, cb, cb : cb + t] for cb in range(k)], dim=1)

    def valid(self, step: int, n_frames: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool ``[K]``: which codebooks hold a real frame (not padding) at ``step`` for ``T`` frames."""
        frame = step - torch.arange(self.n_codebooks, device=device)
        return (frame >= 0) & (frame < n_frames)

    def valid_mask(self, n_frames: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool ``[K, S]``: ``valid`` for every step of a sequence holding ``T`` frames."""
        steps = torch.arange(self.sequence_length(n_frames), device=device)
        frame = steps[None, :] - torch.arange(self.n_codebooks, device=device)[:, None]
        return (frame >= 0) & (frame < n_frames)

    def _check_k(self, k: int) -> None:
        if k != self.n_codebooks:
            raise ValueError(f"expected {self.n_codebooks} codebooks, got a tensor with {k}")
