"""Chroma extraction on known tones, and a MIDI melody rendered to piano keeps its pitch class."""

from __future__ import annotations

import pytest
import torch

from cadenza.generators.codec_lm.chroma import ChromaSettings, chroma, dominant_pitch_class, match_length
from cadenza.generators.codec_lm.inputs import melody_waveform

SR = 16000


def _sine(freq: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return (0.4 * torch.sin(2 * torch.pi * freq * t))[None]


@pytest.mark.parametrize("freq, name", [(440.0, "A"), (261.63, "C"), (392.0, "G"), (311.13, "D#"), (880.0, "A")])
def test_sine_tones_land_on_their_pitch_class(freq, name):
    feats = chroma(_sine(freq), ChromaSettings(SR, radix2_exp=12))
    assert feats.shape == (1, ChromaSettings(SR, radix2_exp=12).n_frames(SR), 12)
    assert torch.allclose(feats.sum(-1), torch.ones(feats.shape[:2]))  # one-hot per frame (argmax)
    assert dominant_pitch_class(feats[0]) == name


def test_soft_chroma_peaks_at_one():
    feats = chroma(_sine(440.0), ChromaSettings(SR, radix2_exp=12, argmax=False))
    assert float(feats.max()) == pytest.approx(1.0)
    assert int(feats[0, 10].argmax()) == 9  # A


def test_silence_is_audiocrafts_null_melody():
    feats = chroma(torch.zeros(1, 1), ChromaSettings(SR, radix2_exp=12))
    assert feats.shape == (1, 5, 12) and bool((feats.argmax(-1) == 0).all())


def test_match_length_tiles_and_truncates():
    x = torch.arange(3.0).view(1, 3, 1)
    assert match_length(x, 7).flatten().tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert match_length(x, 2).flatten().tolist() == [0, 1]


def test_midi_melody_renders_to_its_pitch_class(midi_file):
    tune = midi_file("a.mid", notes=[(0, 1920, 69, 100)], qpm=120)  # A4 for two seconds
    wav = melody_waveform(tune, SR)
    assert wav.dim() == 1 and wav.shape[0] > SR
    assert dominant_pitch_class(chroma(wav[None], ChromaSettings(SR, radix2_exp=12))[0]) == "A"
