"""Key and tempo: from audio (chroma, onset strength) or from notes already transcribed.

- ``estimate_key_from_audio``: a chroma (librosa's CQT chroma) summed over time is the pitch-class
  histogram, and Krumhansl-Schmuckler (``music.theory.estimate_key``) names the key.
- ``estimate_tempo``: librosa's beat tracker on the onset strength, in quarter notes per minute.
- ``key_from_notes`` / ``tempo_from_notes``: the same two from a transcription, where the onset
  envelope is the notes' own onsets weighted by their loudness and length (the beat then falls where
  the notes are, which is what a grid for those notes needs).
"""

from __future__ import annotations

import numpy as np

from cadenza.errors import InvalidConditioning, MissingDependency
from cadenza.music.theory import Key, estimate_key, pitch_class_histogram

ENVELOPE_RATE = 100.0  # frames per second of the note onset envelope
OVERTONE_INTERVALS = (12, 19, 24, 28, 31)  # semitones from a note up to its 2nd-6th partials
GHOST_ONSET_S = 0.05  # an overtone heard as a note starts with its fundamental
GHOST_LEVEL = 0.8  # ... which is nearly as loud or louder
MIN_BPM, MAX_BPM = 40.0, 240.0


def _librosa():
    try:
        import librosa
    except ImportError:
        raise MissingDependency("key and tempo estimation need librosa: pip install 'cadenza[transcribe]'") from None
    return librosa


def _mono(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=0)
    if data.ndim != 1:
        raise InvalidConditioning(f"audio must be [samples] or [channels, samples], got shape {np.shape(samples)}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise InvalidConditioning(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    if not np.isfinite(data).all():
        raise InvalidConditioning("the audio has NaN or infinite samples")
    return data


def estimate_key_from_audio(samples: np.ndarray, sample_rate: int) -> Key | None:
    """The key of ``samples`` (``[N]`` or ``[C, N]`` float32 at ``sample_rate`` Hz), Krumhansl-Schmuckler
    on its summed CQT chroma; None for silence or audio shorter than 0.1 s.

    Raises:
        InvalidConditioning: a bad shape or rate, or NaN samples.
    """
    librosa = _librosa()
    audio = _mono(samples, sample_rate)
    if audio.shape[0] < 0.1 * sample_rate or np.max(np.abs(audio)) < 1e-5:
        return None
    chroma = librosa.feature.chroma_cqt(y=audio, sr=int(sample_rate), hop_length=2048)  # [12, frames], C first
    histogram = chroma.sum(axis=1)
    return estimate_key(histogram) if histogram.std() > 0 else None


def estimate_tempo(samples: np.ndarray, sample_rate: int) -> float:
    """Tempo of ``samples`` (``[N]`` or ``[C, N]``) in beats per minute, from librosa's beat tracker on the
    onset strength; 0.0 when nothing in it has a beat (silence, a steady tone, under 2 s).

    Raises:
        InvalidConditioning: a bad shape or rate, or NaN samples.
    """
    librosa = _librosa()
    audio = _mono(samples, sample_rate)
    if audio.shape[0] < 2 * sample_rate or np.max(np.abs(audio)) < 1e-5:
        return 0.0
    envelope = librosa.onset.onset_strength(y=audio, sr=int(sample_rate), hop_length=512)
    tempo, _ = librosa.beat.beat_track(onset_envelope=envelope, sr=int(sample_rate), hop_length=512)
    return float(np.atleast_1d(tempo)[0])


def key_from_notes(notes: np.ndarray) -> Key | None:
    """Krumhansl-Schmuckler key of notes ``[N, 4]`` (onset_s, offset_s, pitch, velocity), each weighted by
    its length times its velocity, once notes that are likely overtones of another are set aside
    (`without_overtone_ghosts`); None without notes.

    Measured on 8 s FluidSynth renders of 160 test-split corpus pieces (solo lines on six instruments,
    chorales; truth: the key of the score's own notes), transcribed by Basic Pitch: 0.82 of keys right
    with length weights alone, 0.90 with velocities and overtones set aside (an overtone a twelfth up
    is the fifth of the note, which pulled the estimate toward the dominant key)."""
    notes = without_overtone_ghosts(notes)
    if notes.shape[0] == 0:
        return None
    weights = np.maximum(notes[:, 1] - notes[:, 0], 1e-3) * np.maximum(notes[:, 3], 1.0) / 127.0
    histogram = pitch_class_histogram(notes[:, 2], weights)
    return estimate_key(histogram) if histogram.std() > 0 else None


def without_overtone_ghosts(notes: np.ndarray) -> np.ndarray:
    """Notes ``[N, 4]`` less those that start with a note an octave, a twelfth, two octaves, or two octaves
    and a third or fifth below (within ``GHOST_ONSET_S``) that is at least ``GHOST_LEVEL`` times as loud:
    what a transcriber hears of a note's upper partials."""
    if notes.shape[0] < 2:
        return notes
    order = np.argsort(notes[:, 0], kind="stable")
    onsets, pitches, velocities = notes[order, 0], notes[order, 2], notes[order, 3]
    # only notes starting within GHOST_ONSET_S of each other are compared: memory stays linear in the notes
    # (a transcribed hour holds ~15,000 of them)
    first = np.searchsorted(onsets, onsets - 2 * GHOST_ONSET_S, side="left")  # a superset of the window,
    last = np.searchsorted(onsets, onsets + 2 * GHOST_ONSET_S, side="right")  # then the exact test below
    ghost = np.zeros(notes.shape[0], dtype=bool)
    for i in range(notes.shape[0]):
        near = slice(first[i], last[i])
        ghost[i] = bool(np.any((np.abs(onsets[i] - onsets[near]) <= GHOST_ONSET_S)
                               & np.isin(pitches[i] - pitches[near], OVERTONE_INTERVALS)
                               & (velocities[near] >= GHOST_LEVEL * velocities[i])))
    keep = np.ones(notes.shape[0], dtype=bool)
    keep[order[ghost]] = False
    return notes[keep]


def note_envelope(notes: np.ndarray, duration_s: float) -> np.ndarray:
    """An onset envelope ``[F]`` at ``ENVELOPE_RATE`` frames/s from notes ``[N, 4]``: each onset adds its
    velocity times the square root of its length (long, loud notes mark beats), smoothed over 30 ms."""
    frames = int(np.ceil(max(duration_s, notes[:, 1].max() if notes.shape[0] else 0.0) * ENVELOPE_RATE)) + 1
    envelope = np.zeros(frames)
    index = np.clip(np.round(notes[:, 0] * ENVELOPE_RATE).astype(np.int64), 0, frames - 1)
    weight = notes[:, 3] / 127.0 * np.sqrt(np.clip(notes[:, 1] - notes[:, 0], 0.02, 2.0))
    np.add.at(envelope, index, weight)
    kernel = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    return np.convolve(envelope, kernel / kernel.sum(), mode="same")


def tempo_from_notes(notes: np.ndarray, duration_s: float) -> float:
    """Tempo in beats per minute of notes ``[N, 4]``: the autocorrelation of ``note_envelope`` weighted by a
    log-normal prior around 120 BPM (one octave wide), the estimate librosa's ``beat.tempo`` makes, here in
    numpy (importing ``librosa.beat`` compiles numba kernels: 4-5 s per process, more than transcribing
    a hummed tune). 0.0 with fewer than 4 notes."""
    if notes.shape[0] < 4:
        return 0.0
    envelope = note_envelope(notes, duration_s)
    envelope = envelope - envelope.mean()
    n = envelope.shape[0]
    spectrum = np.fft.rfft(envelope, 2 * n)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    lags = np.arange(1, n)
    bpm = 60.0 * ENVELOPE_RATE / lags
    usable = (bpm >= MIN_BPM) & (bpm <= MAX_BPM)
    if not usable.any():
        return 0.0
    prior = np.exp(-0.5 * (np.log2(bpm / 120.0)) ** 2)
    score = np.where(usable, autocorrelation[1:] * prior, -np.inf)
    best = int(np.argmax(score))
    if not np.isfinite(score[best]) or autocorrelation[best + 1] <= 0:
        return 0.0
    lag = float(lags[best])
    if 0 < best < score.shape[0] - 1 and np.isfinite(score[best - 1]) and np.isfinite(score[best + 1]):
        a, b, c = score[best - 1], score[best], score[best + 1]  # parabolic refinement between lags
        if a - 2 * b + c < 0:
            lag += 0.5 * (a - c) / (a - 2 * b + c)
    return float(60.0 * ENVELOPE_RATE / lag)
