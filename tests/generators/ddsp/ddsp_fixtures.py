"""Helpers for the DDSP tests (a module with a unique name, so test files import it unambiguously):
a tiny random DDSP instrument written as a checkpoint (the same path a trained one takes: DDSPDecoder ->
safetensors + manifest) and a synthetic sung tone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cadenza.generators.ddsp.export import save_instrument
from cadenza.generators.ddsp.model import DDSPDecoder, DecoderConfig, InstrumentStats

TINY_NAME = "ddsp-tiny"
TINY_CONFIG = DecoderConfig(n_harmonics=8, n_noise=9, hidden=16, gru=16, mlp_layers=1)


def build_tiny_instrument(directory: Path, name: str = TINY_NAME, config: DecoderConfig = TINY_CONFIG, seed: int = 0):
    torch.manual_seed(seed)
    return save_instrument(DDSPDecoder(config), InstrumentStats(), directory, name, license="test only",
                           description="tiny random DDSP instrument", made_by={"recipe": "test"}, metrics={})


def sung_tone(sample_rate: int = 22050, seconds: float = 3.5, silence_s: float = 0.75, hz: float = 220.0) -> np.ndarray:
    """``[N]`` float32: silence, a harmonic tone gliding up a fifth with vibrato, silence."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = hz * 2 ** ((7 * t / seconds + 0.3 * np.sin(2 * np.pi * 5 * t)) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2
    gate = ((t > silence_s) & (t < seconds - silence_s)).astype(np.float64)
    return (tone * gate).astype(np.float32)
