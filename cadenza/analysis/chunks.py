"""Decode a long stream of frames chunk by chunk in bounded memory, with the same notes as decoding it
whole wherever a note does not outlast the margin.

Frames arrive in parts (``push``). Each chunk is decoded with ``margin`` frames of context on both
sides; a note is kept by the chunk its start falls in, and notes already kept are handed to the next
chunk's decoder (``claimed``) so that their sound does not start a second note there. At most
``margin + chunk + margin`` frames (plus one pushed part) are held at any time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import numpy as np

F = TypeVar("F", bound="FrameSeries")

# A note while decoding: (start_frame, end_frame, midi_pitch, amplitude 0-1, bend [end - start] or None)
LocalNote = tuple[int, int, int, float, "np.ndarray | None"]
# A note kept: (onset_s, offset_s, midi_pitch, amplitude 0-1, bend or None)
TimedNote = tuple[float, float, int, float, "np.ndarray | None"]


class FrameSeries(Protocol):
    """Consecutive analysis frames with their times: ``times_s [F]``, ``slice``, ``len`` and ``concat``."""

    times_s: np.ndarray

    def __len__(self) -> int: ...

    def slice(self, start: int, stop: int | None = None): ...


class ChunkedDecoder:
    """``decode(frames, claimed) -> [LocalNote]`` applied chunk by chunk; see the module docstring.

    ``claimed``: ``(start_frame, end_frame, midi_pitch)`` in the frames' own indices, of notes kept from
    earlier chunks that reach into them. ``concat`` joins two frame series. ``frame_s``: one frame's
    length in seconds (the time of a note ending at the last frame).
    """

    def __init__(self, decode: Callable[[F, Sequence[tuple[int, int, int]]], list[LocalNote]],
                 concat: Callable[[list[F]], F], chunk_frames: int, margin_frames: int, frame_s: float) -> None:
        self._decode = decode
        self._concat = concat
        self.chunk = max(1, int(chunk_frames))
        self.margin = max(0, int(margin_frames))
        self.frame_s = frame_s
        self._buffer: F | None = None
        self._core = 0  # first frame of the buffer not yet decoded as a chunk's core
        self._claimed: list[tuple[float, float, int]] = []  # (onset_s, offset_s, pitch) reaching ahead
        self.max_held = 0  # the most frames held at once (for tests of the memory bound)

    def push(self, part: F) -> list[TimedNote]:
        """Take the next frames; return the notes of every chunk now complete."""
        self._buffer = part if self._buffer is None else self._concat([self._buffer, part])
        self.max_held = max(self.max_held, len(self._buffer))
        out: list[TimedNote] = []
        while len(self._buffer) - self._core >= self.chunk + self.margin:
            out += self._decode_core(self._core + self.chunk)
        return out

    def finish(self) -> list[TimedNote]:
        """The notes of what is left."""
        if self._buffer is None or len(self._buffer) <= self._core:
            return []
        return self._decode_core(len(self._buffer))

    def _decode_core(self, core_end: int) -> list[TimedNote]:
        buffer = self._buffer
        times = buffer.times_s
        first_s = float(times[0])
        claimed = [(int(np.searchsorted(times, on, side="left")), int(np.searchsorted(times, off, side="left")), pitch)
                   for on, off, pitch in self._claimed if off > first_s]
        kept: list[TimedNote] = []
        for start, end, pitch, amplitude, bend in self._decode(buffer, claimed):
            if self._core <= start < core_end:
                offset = float(times[end]) if end < len(times) else float(times[-1]) + self.frame_s
                kept.append((float(times[start]), offset, pitch, amplitude, bend))
        drop = max(0, core_end - self.margin)
        self._buffer = buffer.slice(drop)
        self._core = core_end - drop
        next_s = float(self._buffer.times_s[0]) if len(self._buffer) else float("inf")
        self._claimed = [c for c in self._claimed if c[1] > next_s] + [(n[0], n[1], n[2]) for n in kept if n[1] > next_s]
        return kept
