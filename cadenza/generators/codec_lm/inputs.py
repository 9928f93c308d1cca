"""Audio inputs of a codec LM request: the prompt to continue and the melody to follow.

- Prompt: read with ``read_audio`` and resampled (soxr) to the codec rate; mono <-> stereo is converted
  (averaged / duplicated); files below ``MIN_SAMPLE_RATE``, with more than two channels, shorter than one
  codec frame, or not shorter than the requested duration are refused with a clear error.
- Melody: an audio file (mixed to mono) or a MIDI file rendered through FluidSynth as solo piano (drum
  tracks dropped, every other track played on program 0), both at the chroma sample rate.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cadenza.conditioning import MIDI_SUFFIXES
from cadenza.errors import CorruptInput, InvalidConditioning

#: A prompt recorded below this rate (telephone band, or a broken header) cannot stand in for music.
MIN_SAMPLE_RATE = 8000


def _file_rate(path: str | os.PathLike) -> int:
    import soundfile

    try:
        return int(soundfile.info(str(path)).samplerate)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise CorruptInput(f"{path}: not a readable audio file ({exc})") from exc


def read_prompt(path: str | os.PathLike, sample_rate: int, channels: int, frame_rate: float,
                max_seconds: float) -> torch.Tensor:
    """The prompt audio as ``[channels, N]`` float32 at ``sample_rate`` Hz, checked for use as a prompt.

    ``frame_rate``: codec frames per second (the prompt must hold at least one frame); ``max_seconds``:
    the requested total duration (the prompt must be shorter: the model continues it up to there).
    """
    from cadenza.fileio.audio import read_audio

    rate = _file_rate(path)
    if rate < MIN_SAMPLE_RATE:
        raise InvalidConditioning(f"prompt {path}: sample rate {rate} Hz is below {MIN_SAMPLE_RATE} Hz; "
                                  f"use a recording at {sample_rate} Hz (or at least {MIN_SAMPLE_RATE} Hz)")
    samples, _ = read_audio(path, sample_rate=sample_rate)
    if samples.shape[0] not in (1, 2):
        raise InvalidConditioning(f"prompt {path} has {samples.shape[0]} channels; use a mono or stereo file")
    if samples.shape[0] != channels:
        samples = samples.mean(axis=0, keepdims=True) if channels == 1 else np.repeat(samples, channels, axis=0)
    seconds = samples.shape[1] / sample_rate
    if seconds * frame_rate < 1:
        raise InvalidConditioning(f"prompt {path} is {seconds * 1000:.1f} ms long, shorter than one codec frame "
                                  f"({1000 / frame_rate:.1f} ms)")
    if seconds >= max_seconds:
        raise InvalidConditioning(f"prompt {path} lasts {seconds:.2f} s but the requested duration is {max_seconds:.2f} s "
                                  "(the duration includes the prompt); ask for a longer duration or trim the prompt")
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def melody_waveform(path: str | os.PathLike, sample_rate: int) -> torch.Tensor:
    """The melody as mono ``[N]`` float32 at ``sample_rate`` Hz (MIDI rendered as solo piano)."""
    if Path(path).suffix.lower() in MIDI_SUFFIXES:
        return torch.from_numpy(render_piano(path, sample_rate))
    from cadenza.fileio.audio import read_audio

    samples, _ = read_audio(path, sample_rate=sample_rate, mono=True)
    return torch.from_numpy(np.ascontiguousarray(samples[0], dtype=np.float32))


def render_piano(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """MIDI file -> mono ``[N]`` float32 piano rendering (no reverb, so chroma sees the notes only)."""
    from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions
    from cadenza.fileio.midi import load_midi

    score = load_midi(path)
    for index in reversed(range(len(score.tracks))):
        track = score.tracks[index]
        if track.is_drum:
            score.tracks.pop(index)
        else:
            track.program = 0
    if not any(len(t.notes) for t in score.tracks):
        raise CorruptInput(f"melody {path}: no pitched notes to follow (drum tracks are ignored)")
    options = RenderOptions(sample_rate=sample_rate, stereo=False, reverb=False, chorus=False, tail_s=0.25)
    with FluidSynthRenderer(options) as renderer:
        audio = renderer.render(score)
    return np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)
