"""Pure DSP functions of DDSP in PyTorch: no state, no parameters, differentiable where it matters.

Conventions: audio ``[B, N]`` float32 at ``sample_rate`` Hz; frame-rate controls ``[B, F, C]`` with
frame ``k`` centred on sample ``k * hop``. Amplitudes are linear, frequencies in Hz, loudness in dB.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TWO_PI = 2.0 * math.pi


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7) -> torch.Tensor:
    """DDSP's output nonlinearity: ``max_value * sigmoid(x) ** log(exponent) + threshold`` (positive,
    smooth, with a wide dynamic range in its lower half)."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def hz_to_midi(f0_hz: torch.Tensor) -> torch.Tensor:
    """Frequency in Hz -> MIDI pitch (float; 0 Hz maps to MIDI 0)."""
    return torch.where(f0_hz > 0, 12.0 * torch.log2(f0_hz.clamp_min(1e-5) / 440.0) + 69.0, torch.zeros_like(f0_hz))


def midi_to_hz(pitch: torch.Tensor) -> torch.Tensor:
    """MIDI pitch (float) -> Hz."""
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def upsample_frames(frames: torch.Tensor, hop: int, next_frame: torch.Tensor | None = None) -> torch.Tensor:
    """Linear interpolation of frame-rate controls to audio rate.

    ``frames [B, F, C]`` -> ``[B, F * hop, C]``; sample ``k * hop + j`` is ``(1 - j/hop) * frame[k] +
    (j/hop) * frame[k + 1]``. ``next_frame [B, 1, C]`` is the frame after the last (streaming); without it
    the last frame is held.
    """
    if next_frame is None:
        next_frame = frames[:, -1:]
    following = torch.cat([frames[:, 1:], next_frame], dim=1)
    t = torch.arange(hop, dtype=frames.dtype, device=frames.device).div_(hop)[None, None, :, None]
    out = frames[:, :, None, :] + (following - frames)[:, :, None, :] * t
    return out.reshape(frames.shape[0], frames.shape[1] * hop, frames.shape[2])


def remove_above_nyquist(amplitudes: torch.Tensor, f0_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Anti-aliasing: zero harmonic ``k`` (1-based) wherever ``k * f0 >= sample_rate / 2``.

    ``amplitudes [B, T, K]``, ``f0_hz [B, T]`` (any rate, the same T) -> ``[B, T, K]``.
    """
    k = torch.arange(1, amplitudes.shape[-1] + 1, dtype=f0_hz.dtype, device=f0_hz.device)
    return amplitudes * (f0_hz[..., None] * k < sample_rate / 2.0).to(amplitudes.dtype)


def harmonic_synthesis(f0_hz: torch.Tensor, amplitudes: torch.Tensor, sample_rate: int,
                       initial_phase: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive oscillator bank: harmonics ``k * f0`` with per-sample amplitudes, anti-aliased.

    Args:
        f0_hz: ``[B, N]`` audio-rate fundamental in Hz.
        amplitudes: ``[B, N, K]`` audio-rate linear amplitude of harmonics 1..K.
        initial_phase: ``[B]`` float64 phase of the fundamental before the first sample (streaming);
            None = 0.
    Returns:
        ``(audio [B, N], final_phase [B] float64 in [0, 2 pi))``; the fundamental's phase is
        accumulated in float64 so long files do not drift.
    """
    step = f0_hz.double() * (TWO_PI / sample_rate)
    phase = torch.cumsum(step, dim=1)
    if initial_phase is not None:
        phase = phase + initial_phase[:, None]
    final = torch.remainder(phase[:, -1], TWO_PI)
    phase = torch.remainder(phase, TWO_PI).to(f0_hz.dtype)
    amplitudes = remove_above_nyquist(amplitudes, f0_hz, sample_rate)
    k = torch.arange(1, amplitudes.shape[-1] + 1, dtype=f0_hz.dtype, device=f0_hz.device)
    audio = (torch.sin(phase[..., None] * k) * amplitudes).sum(-1)
    return audio, final


def harmonic_synthesis_frames(f0_hz: torch.Tensor, amplitudes: torch.Tensor, hop: int, sample_rate: int,
                              next_f0: torch.Tensor | None = None, next_amplitudes: torch.Tensor | None = None,
                              initial_phase: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`harmonic_synthesis` driven by frame-rate controls, ~3x faster to train: amplitudes are never
    upsampled to ``[B, N, K]``; each frame's block is two matrix products with the harmonics' sines.

    ``f0_hz [B, F]`` and ``amplitudes [B, F, K]`` per frame (linearly interpolated between frames, like
    `upsample_frames`; ``next_*`` is the frame after the last, default: hold). Anti-aliasing is per frame
    (a harmonic is dropped from a block where it exceeds Nyquist at either end).
    Returns ``(audio [B, F * hop], final_phase [B] float64)``.
    """
    b, f, k = amplitudes.shape
    if next_f0 is None:
        next_f0, next_amplitudes = f0_hz[:, -1:], amplitudes[:, -1:]
    f0_next = torch.cat([f0_hz[:, 1:], next_f0], dim=1)
    amps_next = torch.cat([amplitudes[:, 1:], next_amplitudes], dim=1)
    top = torch.maximum(f0_hz, f0_next)
    start = remove_above_nyquist(amplitudes, top, sample_rate)
    end = remove_above_nyquist(amps_next, top, sample_rate)
    f0_audio = upsample_frames(f0_hz[..., None], hop, next_f0[..., None])[..., 0]
    phase = torch.cumsum(f0_audio.double() * (TWO_PI / sample_rate), dim=1)
    if initial_phase is not None:
        phase = phase + initial_phase[:, None]
    final = torch.remainder(phase[:, -1], TWO_PI)
    phase = torch.remainder(phase, TWO_PI).to(f0_hz.dtype)
    harmonic = torch.arange(1, k + 1, dtype=f0_hz.dtype, device=f0_hz.device)
    sines = torch.sin(phase[..., None] * harmonic).reshape(b * f, hop, k)
    pair = torch.stack([start, end], dim=-1).reshape(b * f, k, 2)
    both = torch.bmm(sines, pair)  # [B*F, hop, 2]: the block at the start and at the end amplitudes
    t = torch.arange(hop, dtype=f0_hz.dtype, device=f0_hz.device).div_(hop)[None, :]
    audio = both[..., 0] + (both[..., 1] - both[..., 0]) * t
    return audio.reshape(b, f * hop), final


def frequency_impulse_response(magnitudes: torch.Tensor, window_size: int = 0) -> torch.Tensor:
    """Linear-phase FIR filters from frequency-response magnitudes (the FilteredNoise design).

    ``magnitudes [B, F, M]`` (M bands evenly spaced from 0 Hz to Nyquist) -> ``[B, F, L]`` impulse
    responses, Hann-windowed to ``L = window_size`` taps (0: ``2 * (M - 1)``), made causal by shifting
    the zero-phase response by ``L // 2`` samples.
    """
    ir = torch.fft.irfft(magnitudes.to(torch.float32), dim=-1)  # zero phase: centred on sample 0
    full = ir.shape[-1]
    size = full if window_size <= 0 else min(window_size, full)
    ir = torch.roll(ir, shifts=full // 2, dims=-1)  # centre in the middle
    start = full // 2 - size // 2
    ir = ir[..., start:start + size]
    window = torch.hann_window(size, periodic=False, dtype=ir.dtype, device=ir.device)
    return ir * window


def fft_convolve(signal: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Full linear convolution along the last axis via FFT.

    ``signal [..., N]``, ``kernel [..., L]`` (broadcastable leading dims) -> ``[..., N + L - 1]``.
    """
    n = signal.shape[-1] + kernel.shape[-1] - 1
    size = 1 << (n - 1).bit_length()
    out = torch.fft.irfft(torch.fft.rfft(signal, size) * torch.fft.rfft(kernel, size), size)
    return out[..., :n]


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """``frames [B, F, W]`` placed every ``hop`` samples and summed -> ``[B, (F - 1) * hop + W]``."""
    b, f, w = frames.shape
    out = F.fold(frames.transpose(1, 2), output_size=(1, (f - 1) * hop + w), kernel_size=(1, w), stride=(1, hop))
    return out.reshape(b, -1)


def filtered_noise(noise: torch.Tensor, magnitudes: torch.Tensor, window_size: int = 0) -> torch.Tensor:
    """Noise shaped frame by frame by time-varying FIR filters.

    Args:
        noise: ``[B, F, hop]`` white noise, one block per frame.
        magnitudes: ``[B, F, M]`` filter magnitudes per frame (see ``frequency_impulse_response``).
    Returns:
        ``[B, F * hop + L - 1]``: every block convolved with its frame's filter and overlap-added
        (the last ``L - 1`` samples are the tail that spills past the frames).
    """
    ir = frequency_impulse_response(magnitudes, window_size)
    blocks = fft_convolve(noise, ir)  # [B, F, hop + L - 1]
    return overlap_add(blocks, noise.shape[-1])


def a_weighting_db(frequencies: torch.Tensor) -> torch.Tensor:
    """IEC 61672 A-weighting in dB at ``frequencies`` Hz (any shape); 0 dB at 1 kHz."""
    f2 = frequencies.double().clamp_min(1e-3) ** 2
    ra = (12194.0 ** 2 * f2 ** 2) / ((f2 + 20.6 ** 2) * torch.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2)) * (f2 + 12194.0 ** 2))
    return (20.0 * torch.log10(ra) + 2.0).float()


def a_weighted_loudness(audio: torch.Tensor, sample_rate: int, hop: int, n_fft: int = 1024,
                        ref_db: float = 20.7, range_db: float = 120.0) -> torch.Tensor:
    """Perceptual loudness per frame, as DDSP computes it: A-weighted power spectrum averaged over
    frequency, in dB, floored at ``-range_db``.

    ``audio [B, N]`` -> ``[B, N // hop + 1]`` dB, frame ``k`` centred on sample ``k * hop`` (zero padding
    beyond the ends). ``ref_db`` makes a full-scale sine read about 0 dB.
    """
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant", return_complex=True)
    power_db = 10.0 * torch.log10(spec.real ** 2 + spec.imag ** 2 + 1e-20)
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, device=audio.device)
    weighted = power_db + a_weighting_db(freqs)[None, :, None].to(audio.dtype) - ref_db
    loudness = weighted.clamp_min(-range_db).mean(dim=1)
    return loudness[:, : audio.shape[-1] // hop + 1]


def multiscale_spectral_loss(pred: torch.Tensor, target: torch.Tensor,
                             fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64),
                             log_weight: float = 1.0) -> torch.Tensor:
    """DDSP's reconstruction loss: L1 between magnitude spectrograms (and their logs) at several FFT
    sizes (75 % overlap). ``pred, target [B, N]`` -> scalar."""
    loss = pred.new_zeros(())
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, dtype=pred.dtype, device=pred.device)
        spec = [torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, center=True, return_complex=True).abs()
                for x in (pred, target)]
        loss = loss + (spec[0] - spec[1]).abs().mean()
        loss = loss + log_weight * (torch.log(spec[0] + 1e-5) - torch.log(spec[1] + 1e-5)).abs().mean()
    return loss
