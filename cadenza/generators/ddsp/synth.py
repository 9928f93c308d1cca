"""The DDSP synthesizer (harmonic + filtered noise + optional reverb), streamable without seams.

Frame ``k`` of the controls sits on sample ``k * hop``; the audio between frames ``k`` and ``k + 1`` is
interpolated between them. To stream, each chunk's last frame is held back until the next chunk brings
its successor, and the oscillator phase, the noise filter's tail and the reverb's tail are carried in a
`SynthState`. One call with ``last=True`` over all frames gives exactly what any chunking gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cadenza.generators.ddsp import core


@dataclass
class Controls:
    """Frame-rate synthesizer controls. ``f0_hz [B, F]``; ``harmonics [B, F, K]`` linear amplitudes of
    harmonics 1..K; ``noise [B, F, M]`` noise filter magnitudes (M bands, 0 Hz to Nyquist)."""

    f0_hz: torch.Tensor
    harmonics: torch.Tensor
    noise: torch.Tensor

    def frames(self, start: int, stop: int | None = None) -> Controls:
        return Controls(self.f0_hz[:, start:stop], self.harmonics[:, start:stop], self.noise[:, start:stop])

    @staticmethod
    def cat(parts: list[Controls]) -> Controls:
        return Controls(torch.cat([p.f0_hz for p in parts], 1), torch.cat([p.harmonics for p in parts], 1),
                        torch.cat([p.noise for p in parts], 1))


@dataclass
class SynthState:
    """What one chunk hands to the next: the held-back last frame, the fundamental's phase ``[B]``
    float64, the overlap tails ``[B, T]`` of the noise filter and the reverb, and the frame count done."""

    held: Controls | None = None
    phase: torch.Tensor | None = None
    noise_tail: torch.Tensor | None = None
    reverb_tail: torch.Tensor | None = None
    frames_done: int = 0


class NoiseTable:
    """Deterministic white noise addressed by absolute sample position, so a frame gets the same noise
    however the file is chunked. ``period`` samples of uniform noise in [-1, 1) drawn from ``seed``."""

    def __init__(self, seed: int, period: int = 1 << 18) -> None:
        rng = torch.Generator().manual_seed(int(seed))
        self.table = torch.rand(period, generator=rng) * 2.0 - 1.0

    def blocks(self, first_frame: int, count: int, hop: int, batch: int) -> torch.Tensor:
        """``[batch, count, hop]`` noise for frames ``first_frame ...`` (the same for every batch row)."""
        idx = (torch.arange(count * hop) + first_frame * hop) % self.table.shape[0]
        return self.table[idx].reshape(1, count, hop).expand(batch, count, hop)


def _emit_with_tail(full: torch.Tensor, tail: torch.Tensor | None, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``full [B, length + T]`` plus the previous ``tail`` aligned at its start -> (first ``length``
    samples, the new tail)."""
    if tail is not None:
        if tail.shape[-1] > full.shape[-1]:
            full = torch.nn.functional.pad(full, (0, tail.shape[-1] - full.shape[-1]))
        full = torch.cat([full[:, : tail.shape[-1]] + tail, full[:, tail.shape[-1]:]], dim=1)
    return full[:, :length], full[:, length:]


def synthesize(controls: Controls, hop: int, sample_rate: int, noise: NoiseTable | torch.Tensor,
               reverb_ir: torch.Tensor | None = None, state: SynthState | None = None,
               last: bool = True, noise_window: int = 0) -> tuple[torch.Tensor, SynthState]:
    """Audio for a chunk of controls.

    Args:
        controls: this chunk's frames (``F >= 1``).
        noise: a `NoiseTable` (inference) or ``[B, F_total, hop]`` noise blocks indexed by absolute
            frame (training).
        reverb_ir: ``[L]`` impulse response added wet to the dry signal (None = dry).
        state: from the previous chunk (None for the first).
        last: this is the final chunk: the last frame is held for one more ``hop`` and emitted.
    Returns:
        ``(audio [B, S], state)``. Over a whole file of F frames the chunks emit ``F * hop`` samples in
        total; a non-final chunk emits one frame's worth less than it was given (held back).
    """
    state = state or SynthState()
    frames = Controls.cat([state.held, controls]) if state.held is not None else controls
    if last:
        intervals, following = frames, frames.frames(-1)
        held = None
    else:
        intervals, following = frames.frames(0, -1), frames.frames(-1)
        held = frames.frames(-1)
    count = intervals.f0_hz.shape[1]
    batch = controls.f0_hz.shape[0]
    if count == 0:
        return controls.f0_hz.new_zeros(batch, 0), SynthState(held, state.phase, state.noise_tail, state.reverb_tail,
                                                              state.frames_done)
    length = count * hop
    harmonic, phase = core.harmonic_synthesis_frames(intervals.f0_hz, intervals.harmonics, hop, sample_rate,
                                                     following.f0_hz, following.harmonics, state.phase)

    first = state.frames_done
    if isinstance(noise, NoiseTable):
        blocks = noise.blocks(first, count, hop, batch).to(harmonic.device, harmonic.dtype)
    else:
        blocks = noise[:, first:first + count]
    shaped = core.filtered_noise(blocks, intervals.noise, noise_window)
    noisy, noise_tail = _emit_with_tail(shaped, state.noise_tail, length)
    dry = harmonic + noisy
    reverb_tail = None
    if reverb_ir is not None:
        wet = core.fft_convolve(dry, reverb_ir[None, :])
        wet, reverb_tail = _emit_with_tail(wet, state.reverb_tail, length)
        dry = dry + wet
    return dry, SynthState(held, phase, noise_tail, reverb_tail, first + count)
