"""One line of notes from a voice, a whistle or a solo instrument: f0 and confidence from torchfcpe
(``analysis.pitch``), loudness from the signal, then notes segmented from them.

Frames are 10 ms (16 kHz, hop 160). A frame is pitched when the tracker's confidence reaches
``voicing_threshold`` and it is no more than ``GATE_DB`` below the loud part of the recording. Pitches
are rounded to semitones with hysteresis (vibrato and a slightly sharp or flat voice stay one note;
a glide moves on only when it has left the note by ``HYSTERESIS`` semitones); blips shorter than
``BLIP_FRAMES`` are absorbed, and so are short runs an octave or a twelfth below the next note (the
tracker's error while a bowed or blown attack settles). A held pitch is struck again at a salient peak
of spectral flux (salience: the flux above its local median, so a bow's or a breath's steady noise does
not count) or at a dip in loudness after which the same pitch goes on. Each note then starts where its
sound began, a few frames before the tracker is sure of the pitch: at the most salient flux peak just
before (an attack), or, for legato changes with no attack, where the old note began to fade into the
dip between the two. A note's pitch is the median of its tracked frames; notes shorter than
``min_note_ms`` are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cadenza.analysis.chunks import LocalNote
from cadenza.analysis.pitch import HOP, SAMPLE_RATE, PitchTracker

SEGMENT_S = 10.0  # audio tracked at a time
CONTEXT = 50 * HOP  # samples of context on each side of a segment (0.5 s), multiple of the hop
LOUDNESS_WINDOW = 512
GATE_DB = 35.0  # frames this far below the loud part (95th percentile) are not notes
FLOOR_DB = -65.0  # nor anything quieter than this (dB re full scale RMS)
HYSTERESIS = 0.7  # semitones a pitch must leave a note by to start another
HARMONIC_FRAMES = 12  # runs this short an octave, a twelfth or two octaves below the next note are that note
HARMONIC_ERRORS = (12, 19, 24)
BLIP_FRAMES = 4  # pitch runs this short are absorbed into the note before them
LOCAL_FRAMES = 12  # the flux's local baseline: its median over +-12 frames
ONSET_PEAK = 3.0  # flux salience this high (see _salience) marks where a note's sound began
RESTRIKE_PEAK = 5.0  # a held pitch is struck again at a salience peak this high
RESTRIKE_DIP_DB = 3.0  # or at a dip in loudness this deep on both sides
RESTRIKE_HOLD_FRAMES = 8  # ... and only where the pitch is still the same this many frames later
DIP_DB = 1.5  # a legato note change shows as a dip in loudness this deep
ONSET_LOOKBACK = 8  # frames a note's start may move back to the flux peak where its sound began


@dataclass
class MonoFrames:
    """``f0_hz [F]`` (0 = unpitched), ``confidence [F]`` (0-1), ``loudness_db [F]``, ``flux [F]`` (spectral
    flux: how much new sound each frame brings) and ``times_s [F]``."""

    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray
    flux: np.ndarray
    times_s: np.ndarray

    def __len__(self) -> int:
        return int(self.times_s.shape[0])

    def slice(self, start: int, stop: int | None = None) -> MonoFrames:
        return MonoFrames(self.f0_hz[start:stop], self.confidence[start:stop], self.loudness_db[start:stop],
                          self.flux[start:stop], self.times_s[start:stop])

    @staticmethod
    def concat(parts: list[MonoFrames]) -> MonoFrames:
        return MonoFrames(*(np.concatenate([getattr(p, k) for p in parts])
                            for k in ("f0_hz", "confidence", "loudness_db", "flux", "times_s")))


def track_frames(blocks: Iterable[np.ndarray], tracker: PitchTracker) -> Iterator[MonoFrames]:
    """Frames of a stream of 16 kHz mono ``blocks [n]``, ``SEGMENT_S`` seconds at a time (each tracked
    with half a second of context on both sides), up to the end of the audio: ``N // 160 + 1`` frames."""
    segment = int(SEGMENT_S * SAMPLE_RATE)
    buffer = np.zeros(CONTEXT, dtype=np.float32)  # zeros stand in before the audio
    base = -CONTEXT  # audio sample index of buffer[0]
    total = 0
    index = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        total += block.shape[0]
        while (index + 1) * segment + CONTEXT <= total:
            yield _segment_frames(buffer, base, index * segment, segment, tracker)
            index += 1
            keep_from = index * segment - CONTEXT - base
            buffer, base = buffer[keep_from:], base + keep_from
    frames_total = total // HOP + 1
    while index * segment // HOP < frames_total:
        start = index * segment
        kept = min(segment, (frames_total * HOP) - start)
        padded = np.pad(buffer, (0, max(0, start + segment + CONTEXT - base - buffer.shape[0])))
        yield _segment_frames(padded, base, start, kept, tracker)
        index += 1


def _segment_frames(buffer: np.ndarray, base: int, start: int, length: int, tracker: PitchTracker) -> MonoFrames:
    """Frames for audio samples ``[start, start + length)``, tracked over ``CONTEXT`` more on each side."""
    lo = start - CONTEXT - base
    audio = buffer[lo:lo + length + 2 * CONTEXT]
    f0, confidence = tracker.track(audio)
    first, count = CONTEXT // HOP, -(-length // HOP)
    keep = slice(first, first + count)
    times = (start + np.arange(count) * HOP) / SAMPLE_RATE
    return MonoFrames(f0[keep], confidence[keep], _rms_db(audio)[keep], _flux(audio)[keep], times)


def _rms_db(audio: np.ndarray) -> np.ndarray:
    """RMS level in dB of ``LOUDNESS_WINDOW`` samples centred on each frame ``k * HOP``: ``[N // HOP + 1]``."""
    half = LOUDNESS_WINDOW // 2
    padded = np.pad(audio.astype(np.float64), (half, half))
    power = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    centres = np.arange(audio.shape[0] // HOP + 1) * HOP
    energy = (power[centres + LOUDNESS_WINDOW] - power[centres]) / LOUDNESS_WINDOW
    return (10.0 * np.log10(np.maximum(energy, 1e-12))).astype(np.float32)


def _flux(audio: np.ndarray) -> np.ndarray:
    """Spectral flux ``[N // HOP + 1]``: the summed rise of log-compressed magnitudes (Hann window of
    ``LOUDNESS_WINDOW`` samples centred on each frame) over the frame before: peaks where notes start,
    also where one pitch follows another without a break in loudness."""
    half = LOUDNESS_WINDOW // 2
    padded = np.pad(audio.astype(np.float32), (half, half))
    count = audio.shape[0] // HOP + 1
    index = np.arange(count)[:, None] * HOP + np.arange(LOUDNESS_WINDOW)[None, :]
    spectrum = np.abs(np.fft.rfft(padded[index] * np.hanning(LOUDNESS_WINDOW).astype(np.float32), axis=1))
    compressed = np.log1p(100.0 * spectrum)
    rise = np.maximum(np.diff(compressed, axis=0, prepend=compressed[:1]), 0.0)
    return rise.sum(axis=1).astype(np.float32)


def segment_notes(frames: MonoFrames, voicing_threshold: float, min_frames: int,
                  pitch_range: tuple[int, int], claimed: Sequence[tuple[int, int, int]] = ()) -> list[LocalNote]:
    """Notes ``(start_frame, end_frame, midi_pitch, amplitude 0-1, None)`` of ``frames``; frames covered by
    ``claimed`` notes ``(start, end, pitch)`` (kept from the chunk before) start none."""
    n = len(frames)
    if n == 0:
        return []
    loud = frames.loudness_db.astype(np.float64)
    pitched = (frames.confidence >= voicing_threshold) & (frames.f0_hz > 0)
    reference = float(np.percentile(loud[pitched], 95)) if pitched.any() else float(loud.max())
    gate = max(FLOOR_DB, reference - GATE_DB)
    voiced = pitched & (loud >= gate)
    for start, end, _ in claimed:
        voiced[max(0, start):max(0, end)] = False
    midi = np.full(n, np.nan)
    midi[voiced] = 69.0 + 12.0 * np.log2(frames.f0_hz[voiced] / 440.0)
    steps = _semitones(midi, voiced, max(BLIP_FRAMES, min_frames))
    salience = _salience(frames.flux, loud >= gate)
    onsets = _peaks(salience, ONSET_PEAK)
    restrikes = _peaks(salience, RESTRIKE_PEAK) | _dips(loud, RESTRIKE_DIP_DB)
    # a restrike only where the same pitch goes on after it (a dip before a new pitch is that note's onset)
    later = np.concatenate([steps[RESTRIKE_HOLD_FRAMES:], np.full(min(n, RESTRIKE_HOLD_FRAMES), -1)])
    restrikes &= later == steps

    spans: list[list[int]] = []
    start = None
    for t in range(n + 1):
        boundary = t == n or not voiced[t] or (start is not None and (steps[t] != steps[start]
                                                                      or (restrikes[t] and t - start >= min_frames)))
        if start is not None and boundary:
            spans.append([start, t])
            start = None
        if t < n and voiced[t] and start is None:
            start = t
    # The tracker is sure of a new pitch a few frames after the sound changed: start where it changed.
    # Where no attack stands out (legato: one pitch flows into the next), the sound changed where the old
    # note began to fade into the dip between the two.
    peaks = np.flatnonzero(onsets)
    tracked = [tuple(span) for span in spans]  # the frames each note's pitch is read from
    for i, span in enumerate(spans):
        earliest = max(spans[i - 1][0] + max(1, min_frames) if i else 0, span[0] - ONSET_LOOKBACK)
        near = peaks[(peaks >= earliest) & (peaks <= span[0])]
        if near.size:
            moved = int(near[np.argmax(salience[near])])
        else:
            moved = _dip_start(loud, earliest, span[0])
        if i and spans[i - 1][1] > moved:
            spans[i - 1][1] = moved
        span[0] = min(moved, span[0])
    notes: list[LocalNote] = []
    for (a, b), (pitch_from, pitch_to) in zip(spans, tracked):
        _add_note(notes, a, b, midi[pitch_from:pitch_to], loud, gate, reference, min_frames, pitch_range)
    return notes


def _dip_start(loud: np.ndarray, earliest: int, start: int) -> int:
    """Where the sound began to dip before ``start``: the top before the quietest frame in
    ``[earliest, start]``, when that dip is at least ``DIP_DB`` deep; else ``start``."""
    if start <= earliest:
        return start
    window = loud[earliest:start + 1]
    bottom = int(np.argmin(window))
    if float(window[:bottom + 1].max() - window[bottom]) < DIP_DB:
        return start
    t = bottom
    while t > 0 and window[t - 1] >= window[t]:
        t -= 1
    return earliest + t


def _dips(loud: np.ndarray, depth: float) -> np.ndarray:
    """Frames at the bottom of a dip in loudness at least ``depth`` dB deep on both sides (within 60 ms
    before and 80 ms after): a note released and struck again on the same pitch."""
    n = loud.shape[0]
    padded = np.pad(loud, (6, 8), mode="edge")
    before = np.lib.stride_tricks.sliding_window_view(padded[:n + 6], 7).max(axis=1)
    after = np.lib.stride_tricks.sliding_window_view(padded[6:], 9).max(axis=1)
    near = np.lib.stride_tricks.sliding_window_view(np.pad(loud, (3, 3), mode="edge"), 7).min(axis=1)
    return (loud <= near) & (before - loud >= depth) & (after - loud >= depth)


def _salience(flux: np.ndarray, audible: np.ndarray) -> np.ndarray:
    """How far each frame's spectral flux stands above the flux around it (its median over
    ``2 * LOCAL_FRAMES + 1`` frames), in units of the typical such excess over the audible frames: a bowed
    or breathy sound's steady noise sets the baseline, so only real changes stand out."""
    n = flux.shape[0]
    if n == 0 or not audible.any():
        return np.zeros(n, dtype=np.float32)
    padded = np.pad(flux.astype(np.float64), (LOCAL_FRAMES, LOCAL_FRAMES), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * LOCAL_FRAMES + 1)
    excess = flux - np.median(windows, axis=1)
    spread = float(np.percentile(np.abs(excess[audible]), 75)) + 1e-9
    return np.where(audible, excess / spread, 0.0).astype(np.float32)


def _peaks(strength: np.ndarray, peak: float) -> np.ndarray:
    """Frames where ``strength`` is a local maximum (over +-2 frames) reaching ``peak``."""
    padded = np.pad(strength, (2, 2), constant_values=-np.inf)
    window = np.lib.stride_tricks.sliding_window_view(padded, 5)
    return (strength >= peak) & (strength >= window.max(axis=1))


def _semitones(midi: np.ndarray, voiced: np.ndarray, glide_frames: int) -> np.ndarray:
    """Each voiced frame's semitone, with hysteresis; then runs shorter than ``BLIP_FRAMES`` are absorbed
    into the run before them (the first run of a note into the one after), and runs shorter than
    ``glide_frames`` that lie between the semitones before and after them (a glide passing through) into
    the run after them. Unvoiced frames: -1."""
    steps = np.full(midi.shape[0], -1, dtype=np.int64)
    current = None
    for t in np.flatnonzero(voiced):
        if current is None or not voiced[t - 1] or abs(midi[t] - current) > HYSTERESIS:
            current = int(np.round(midi[t]))
        steps[t] = current
    for passing in (False, True):
        run_starts = np.flatnonzero(np.diff(np.concatenate([[-2], steps])) != 0)
        run_ends = np.concatenate([run_starts[1:], [steps.shape[0]]])
        for a, b in zip(run_starts, run_ends):
            before = steps[a - 1] if a > 0 else -1
            after = steps[b] if b < steps.shape[0] else -1
            if steps[a] < 0:
                continue
            if not passing and b - a < BLIP_FRAMES:
                if before >= 0:
                    steps[a:b] = before
                elif after >= 0:
                    steps[a:b] = after
            elif passing and b - a < glide_frames and before >= 0 and after >= 0 and \
                    min(before, after) < steps[a] < max(before, after):
                steps[a:b] = after
            elif passing and b - a < HARMONIC_FRAMES and after >= 0 and (after - steps[a]) in HARMONIC_ERRORS:
                steps[a:b] = after  # the tracker's octave / twelfth below a note while its attack settles
    return steps


def _add_note(notes: list[LocalNote], start: int, end: int, pitches: np.ndarray, loud: np.ndarray, gate: float,
              reference: float, min_frames: int, pitch_range: tuple[int, int]) -> None:
    """Add the note of frames ``[start, end)`` whose pitch is the median of ``pitches`` (its tracked frames)."""
    if end - start < max(1, min_frames) or np.all(np.isnan(pitches)):
        return
    pitch = int(np.round(np.nanmedian(pitches)))
    if not pitch_range[0] <= pitch <= pitch_range[1]:
        return
    level = (float(np.mean(loud[start:end])) - gate) / max(reference - gate, 1e-6)
    notes.append((start, end, pitch, float(np.clip(0.3 + 0.5 * level, 0.1, 0.8)), None))
