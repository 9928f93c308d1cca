"""Codebook interleaving patterns for codec LMs, as small objects (after audiocraft's ``codebooks_patterns``).

MusicGen's delay pattern shifts codebook ``k`` right by ``k`` steps, so at decode step ``s`` the model
predicts codebook 0 of frame ``s``, codebook 1 of frame ``s - 1``, ... : every codebook of a frame is
predicted after the coarser codebooks of that frame, with one forward per step for all ``K``. Stereo
MusicGen gives the two channels' codebooks of one level the same delay (``custom_delays``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DelayPattern:
    """Delay interleaving for ``n_codebooks`` (K) parallel token streams.

    Layout: ``seq[:, k, s] = codes[:, k, s - d_k]`` when ``0 <= s - d_k < T``, else ``pad_id``, where
    ``d_k = delays[k]``: by default ``k`` (MusicGen mono); MusicGen stereo interleaves two channels'
    codebooks with ``delays = (0, 0, 1, 1, 2, 2, 3, 3)``.
    """

    n_codebooks: int
    custom_delays: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.n_codebooks < 1:
            raise ValueError(f"a delay pattern needs at least one codebook, got {self.n_codebooks}")
        if self.custom_delays is not None:
            delays = tuple(int(d) for d in self.custom_delays)
            if len(delays) != self.n_codebooks or min(delays) != 0:
                raise ValueError(f"delays {self.custom_delays} must give one delay >= 0 per codebook "
                                 f"({self.n_codebooks}) and start at 0")
            object.__setattr__(self, "custom_delays", delays)

    @property
    def delays(self) -> tuple[int, ...]:
        """Delay of each codebook, in steps: ``(0, 1, ..., K - 1)`` unless ``custom_delays`` is set."""
        return self.custom_delays if self.custom_delays is not None else tuple(range(self.n_codebooks))

    @property
    def max_delay(self) -> int:
        return max(self.delays)

    def sequence_length(self, n_frames: int) -> int:
        """Steps ``S = T + max_delay`` needed to hold ``T`` frames."""
        return n_frames + self.max_delay

    def n_frames(self, seq_len: int) -> int:
        """Frames ``T = S - max_delay`` held by a sequence of ``S`` steps."""
        return seq_len - self.max_delay

    def build(self, codes: torch.Tensor, pad_id: int) -> torch.Tensor:
        """Interleave ``codes [B, K, T]`` -> ``seq [B, K, T + max_delay]``, ``pad_id`` where no frame exists."""
        b, k, t = codes.shape
        self._check_k(k)
        seq = codes.new_full((b, k, self.sequence_length(t)), pad_id)
        for cb, delay in enumerate(self.delays):
            seq[:, cb, delay : delay + t] = codes[:, cb]
        return seq

    def revert(self, seq: torch.Tensor) -> torch.Tensor:
        """Undo ``build``: ``seq [B, K, S, ...]`` -> ``codes [B, K, S - max_delay, ...]`` (trailing dims,
        such as logits over a vocabulary, are carried along)."""
        k, s = seq.shape[1], seq.shape[2]
        self._check_k(k)
        t = self.n_frames(s)
        if t < 0:
            raise ValueError(f"a sequence of {s} steps is shorter than the {self.max_delay}-step delay")
        return torch.stack([seq[:, cb, delay : delay + t] for cb, delay in enumerate(self.delays)], dim=1)

    def valid(self, step: int, n_frames: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool ``[K]``: which codebooks hold a real frame (not padding) at ``step`` for ``T`` frames."""
        frame = step - torch.tensor(self.delays, device=device)
        return (frame >= 0) & (frame < n_frames)

    def valid_mask(self, n_frames: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Bool ``[K, S]``: ``valid`` for every step of a sequence holding ``T`` frames."""
        steps = torch.arange(self.sequence_length(n_frames), device=device)
        frame = steps[None, :] - torch.tensor(self.delays, device=device)[:, None]
        return (frame >= 0) & (frame < n_frames)

    def _check_k(self, k: int) -> None:
        if k != self.n_codebooks:
            raise ValueError(f"expected {self.n_codebooks} codebooks, got a tensor with {k}")
