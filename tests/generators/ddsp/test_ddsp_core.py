"""The pure DSP functions: oscillator bank, anti-aliasing, FIR design, filtered noise, convolution,
loudness, spectral loss, and streaming synthesis without seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadenza.generators.ddsp import core
from cadenza.generators.ddsp.synth import Controls, NoiseTable, SynthState, synthesize

SR = 16000


def test_upsample_frames_interpolates_between_frame_centres():
    frames = torch.tensor([[[0.0], [1.0], [3.0]]])
    out = core.upsample_frames(frames, 4)
    assert out.shape == (1, 12, 1)
    assert out[0, :, 0].tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3, 3, 3])
    streamed = core.upsample_frames(frames, 4, next_frame=torch.tensor([[[7.0]]]))
    assert streamed[0, -4:, 0].tolist() == pytest.approx([3, 4, 5, 6])


def test_harmonic_synthesis_is_a_sum_of_sines():
    n = 800
    f0 = torch.full((1, n), 100.0)
    amps = torch.zeros(1, n, 3)
    amps[..., 0], amps[..., 2] = 0.5, 0.25
    audio, phase = core.harmonic_synthesis(f0, amps, SR)
    t = np.arange(1, n + 1) / SR
    expected = 0.5 * np.sin(2 * np.pi * 100 * t) + 0.25 * np.sin(2 * np.pi * 300 * t)
    assert np.allclose(audio[0].numpy(), expected, atol=1e-4)
    expected_phase = 2 * np.pi * 100 * n / SR
    assert np.cos(float(phase[0])) == pytest.approx(np.cos(expected_phase), abs=1e-6)
    assert np.sin(float(phase[0])) == pytest.approx(np.sin(expected_phase), abs=1e-6)


def test_frame_driven_synthesis_matches_the_per_sample_bank():
    torch.manual_seed(0)
    hop, frames = 32, 20
    f0 = 150 + 50 * torch.rand(2, frames)
    amps = torch.rand(2, frames, 6)
    fast, phase_fast = core.harmonic_synthesis_frames(f0, amps, hop, SR)
    slow, phase_slow = core.harmonic_synthesis(core.upsample_frames(f0[..., None], hop)[..., 0],
                                               core.upsample_frames(amps, hop), SR)
    assert torch.allclose(fast, slow, atol=1e-4)
    assert torch.allclose(phase_fast, phase_slow)


def test_harmonics_above_nyquist_are_silent():
    f0 = torch.full((1, 4000), 3000.0)  # harmonics 3+ (9 kHz) are above 8 kHz
    amps = torch.ones(1, 4000, 5)
    audio, _ = core.harmonic_synthesis(f0, amps, SR)
    spectrum = np.abs(np.fft.rfft(audio[0].numpy()))
    freqs = np.fft.rfftfreq(4000, 1 / SR)
    assert spectrum[(freqs > 6500)].max() < 1e-2 * spectrum.max()
    assert core.remove_above_nyquist(amps, f0, SR)[0, 0].tolist() == [1, 1, 0, 0, 0]


def test_impulse_response_is_linear_phase_and_windowed():
    mags = torch.rand(1, 2, 33)
    ir = core.frequency_impulse_response(mags, window_size=31)
    assert ir.shape == (1, 2, 31)
    assert torch.allclose(ir, ir.flip(-1), atol=1e-6)  # symmetric: linear phase
    assert float(ir[..., 0].abs().max()) < 1e-6  # Hann window ends at 0


def test_filtered_noise_follows_the_magnitudes():
    frames, hop = 50, 160
    noise = torch.rand(1, frames, hop, generator=torch.Generator().manual_seed(0)) * 2 - 1
    lowpass = torch.zeros(1, frames, 65)
    lowpass[..., :16] = 1.0  # pass below 2 kHz only
    out = core.filtered_noise(noise, lowpass)
    assert out.shape == (1, frames * hop + 128 - 1)
    spectrum = np.abs(np.fft.rfft(out[0].numpy()))
    freqs = np.fft.rfftfreq(out.shape[-1], 1 / SR)
    assert spectrum[freqs < 1500].mean() > 30 * spectrum[freqs > 3000].mean()


def test_fft_convolve_equals_direct_convolution():
    rng = np.random.default_rng(0)
    x, k = rng.normal(size=100), rng.normal(size=17)
    out = core.fft_convolve(torch.tensor(x), torch.tensor(k)).numpy()
    assert np.allclose(out, np.convolve(x, k), atol=1e-9)


def test_a_weighting_and_loudness():
    assert float(core.a_weighting_db(torch.tensor([1000.0]))[0]) == pytest.approx(0.0, abs=0.1)
    assert float(core.a_weighting_db(torch.tensor([100.0]))[0]) == pytest.approx(-19.1, abs=0.2)
    t = torch.arange(SR) / SR
    sine = torch.sin(2 * np.pi * 1000 * t)[None]
    loud = core.a_weighted_loudness(sine, SR, 160)
    quiet = core.a_weighted_loudness(0.1 * sine, SR, 160)
    assert loud.shape == (1, SR // 160 + 1)
    assert float((loud - quiet)[0, 10:-10].mean()) == pytest.approx(20.0, abs=1.0)
    silent = core.a_weighted_loudness(torch.zeros(1, 1600), SR, 160)
    assert float(silent.max()) == pytest.approx(-120.0)


def test_multiscale_loss_is_zero_only_for_equal_signals():
    x = torch.randn(2, 4096, generator=torch.Generator().manual_seed(0))
    assert float(core.multiscale_spectral_loss(x, x)) == 0.0
    assert float(core.multiscale_spectral_loss(x, 0.5 * x)) > 0.1


@pytest.mark.parametrize("reverb", [False, True])
def test_streaming_synthesis_has_no_seams(reverb):
    torch.manual_seed(0)
    frames, hop = 37, 40
    controls = Controls(150 + 100 * torch.rand(1, frames), torch.rand(1, frames, 5) * 0.1, torch.rand(1, frames, 9) * 0.01)
    ir = torch.randn(300) * 0.01 if reverb else None
    whole, _ = synthesize(controls, hop, SR, NoiseTable(3), ir)
    pieces, state = [], SynthState()
    for start, stop in [(0, 1), (1, 11), (11, 12), (12, 30), (30, 37)]:
        audio, state = synthesize(controls.frames(start, stop), hop, SR, NoiseTable(3), ir, state, last=stop == frames)
        pieces.append(audio)
    chunked = torch.cat(pieces, dim=1)
    assert whole.shape == chunked.shape == (1, frames * hop)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_noise_table_is_addressed_by_position():
    table = NoiseTable(1, period=1000)
    assert torch.equal(table.blocks(3, 2, 10, 1)[0, 1], table.blocks(4, 1, 10, 1)[0, 0])
    assert float(table.table.abs().max()) <= 1.0
