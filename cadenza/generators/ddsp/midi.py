"""MIDI -> audio with a learned DDSP timbre, polyphony included.

DDSP plays one line at a time, so the notes of every (non-drum) track are split into monophonic voices
(a note goes to the free voice whose last pitch is closest, or opens a new one); each voice becomes f0
and loudness curves (attack, release, re-articulation dips, optional delayed vibrato), is played by the
instrument, and the voices are mixed. Each voice can also be kept as a stem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import symusic

from cadenza.errors import CorruptInput, InvalidConditioning
from cadenza.generators.ddsp.features import SAMPLE_RATE
from cadenza.generators.ddsp.model import Instrument
from cadenza.generators.ddsp.transfer import FLOOR_DB, decode, decode_stream
from cadenza.fileio.audio import check_lufs
from cadenza.fileio.limits import DEFAULT_MAX_DURATION_S, check_duration, check_max_duration
from cadenza.fileio.midi import to_seconds


@dataclass(frozen=True)
class NoteRenderOptions:
    """How notes become the instrument's controls.

    attack_s / release_s: loudness ramps at note start and after note end. articulation_db: dip between
    notes played back to back, so each still starts audibly. vibrato_cents (0 = off), vibrato_hz,
    vibrato_delay_s: pitch vibrato after the note has sounded that long. fit_range: move notes outside the
    instrument's trained range by octaves into it. normalize_lufs: loudness of the mix (None = as played).
    sample_rate: output rate (the instruments play at 16 kHz; other rates are resampled). max_voices:
    refuse files needing more simultaneous voices. tail_s: seconds kept after the last note.
    max_duration_s: refuse (``InputTooLong``) a score longer than this, tail included (None: no limit).
    """

    attack_s: float = 0.04
    release_s: float = 0.15
    articulation_db: float = 8.0
    vibrato_cents: float = 0.0
    vibrato_hz: float = 5.5
    vibrato_delay_s: float = 0.3
    fit_range: bool = True
    normalize_lufs: float | None = -14.0
    sample_rate: int = SAMPLE_RATE
    max_voices: int = 32
    tail_s: float = 0.5
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S

    def __post_init__(self) -> None:
        checks = [
            (0.0 <= self.attack_s <= 2.0, "attack_s must be 0-2 s"), (0.0 <= self.release_s <= 5.0, "release_s must be 0-5 s"),
            (0.0 <= self.articulation_db <= 40.0, "articulation_db must be 0-40 dB"),
            (0.0 <= self.vibrato_cents <= 200.0, "vibrato_cents must be 0-200"), (0.1 <= self.vibrato_hz <= 20.0, "vibrato_hz must be 0.1-20"),
            (0.0 <= self.vibrato_delay_s <= 10.0, "vibrato_delay_s must be 0-10 s"),
            (8000 <= self.sample_rate <= 192000, "sample_rate must be 8000-192000 Hz"),
            (1 <= self.max_voices <= 256, "max_voices must be 1-256"), (0.0 <= self.tail_s <= 10.0, "tail_s must be 0-10 s"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidConditioning(f"{message} (got {self})")
        check_lufs(self.normalize_lufs)
        check_max_duration(self.max_duration_s)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RenderedMidi:
    """``mix [1, N]`` float32 and one ``[1, N]`` stem per voice (same gain as in the mix), at ``sample_rate``;
    ``loudness``: what normalisation reached (``fileio.audio.Loudness.to_dict()``), None when not asked."""

    mix: np.ndarray
    stems: list[np.ndarray]
    voice_names: list[str]
    sample_rate: int
    loudness: dict | None = None


def split_voices(score: symusic.Score) -> list[tuple[str, np.ndarray]]:
    """Monophonic voices of every pitched track: ``(name, notes [n, 4])`` with rows (start s, end s, pitch,
    velocity), sorted by start; no two notes of a voice overlap."""
    seconds = to_seconds(score)
    voices: list[tuple[str, np.ndarray]] = []
    for t_index, track in enumerate(seconds.tracks):
        if track.is_drum or not len(track.notes):
            continue
        n = track.notes.numpy()
        notes = np.stack([n["time"], n["time"] + np.maximum(n["duration"], 1e-3), n["pitch"], n["velocity"]], 1).astype(np.float64)
        notes = notes[np.lexsort((-notes[:, 2], notes[:, 0]))]  # by start, the higher pitch first
        ends: list[float] = []
        lasts: list[float] = []
        members: list[list[np.ndarray]] = []
        for note in notes:
            free = [v for v in range(len(ends)) if ends[v] <= note[0] + 1e-3]
            if free:
                v = min(free, key=lambda i: (abs(lasts[i] - note[2]), i))
            else:
                v = len(ends)
                ends.append(0.0)
                lasts.append(note[2])
                members.append([])
            ends[v], lasts[v] = note[1], note[2]
            members[v].append(note)
        name = track.name.strip() or f"track{t_index + 1}"
        for v, rows in enumerate(members):
            voices.append((f"{name}-voice{v + 1}" if len(members) > 1 else name, np.stack(rows)))
    return voices


def note_controls(notes: np.ndarray, frames: int, instrument: Instrument,
                  options: NoteRenderOptions, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """f0 and loudness curves ``([frames], [frames])`` for one voice's ``notes [n, 4]``, from frame ``first``
    on (a slice of the whole curves: a long piece is computed a chunk at a time)."""
    stats = instrument.stats
    t = (first + np.arange(frames)) * instrument.config.hop / instrument.config.sample_rate
    pitch = notes[:, 2].copy()
    if options.fit_range:
        low, high = stats.pitch_low, stats.pitch_high
        pitch = np.where(pitch < low, pitch + 12 * np.ceil((low - pitch) / 12), pitch)
        pitch = np.where(pitch > high, pitch - 12 * np.ceil((pitch - high) / 12), pitch)
    idx = np.clip(np.searchsorted(notes[:, 0], t, side="right") - 1, 0, len(notes) - 1)
    start, end = notes[idx, 0], notes[idx, 1]
    since = t - start
    curve = pitch[idx].astype(np.float64)
    if options.vibrato_cents > 0:
        depth = np.clip((since - options.vibrato_delay_s) / 0.3, 0.0, 1.0) * (t < end)
        curve = curve + depth * options.vibrato_cents / 100.0 * np.sin(2 * np.pi * options.vibrato_hz * np.maximum(since, 0))
    f0 = 440.0 * 2.0 ** ((curve - 69.0) / 12.0)

    span = max(stats.loudness_p95 - stats.loudness_p10, 1.0)
    level = stats.loudness_p10 + span * (notes[idx, 3] / 127.0) ** 0.7  # velocity -> dB within the trained range
    floor = FLOOR_DB
    attack = np.clip(since / max(options.attack_s, 1e-3), 0.0, 1.0)
    released = np.clip((t - end) / max(options.release_s, 1e-3), 0.0, 1.0)
    ld = level + (floor - level) * np.maximum(1.0 - attack, released)
    ld = np.where(t < notes[0, 0], FLOOR_DB, ld)
    # back-to-back notes: a short dip at each onset that follows a still-sounding note
    touching = np.zeros(len(notes), dtype=bool)
    touching[1:] = notes[1:, 0] - notes[:-1, 1] < options.release_s
    dip = touching[idx] * options.articulation_db * np.clip(1.0 - since / max(options.attack_s, 1e-3), 0.0, 1.0)
    ld = ld - dip
    return f0.astype(np.float32), np.clip(ld, FLOOR_DB, 0.0).astype(np.float32)


def _voices_to_play(instrument: Instrument, score: symusic.Score, options: NoteRenderOptions,
                    chunk_s: float) -> tuple[list, int, int]:
    """``(voices, frames, chunk)``: the score's voices (``split_voices``), the instrument frames that hold
    them and their tail, and the frames decoded at a time.

    Raises:
        CorruptInput: no pitched notes. InvalidConditioning: more voices than ``options.max_voices``.
        InputTooLong: longer than ``options.max_duration_s``.
    """
    voices = split_voices(score)
    if not voices:
        raise CorruptInput("the score has no pitched notes to play (drum tracks are not played by DDSP instruments)")
    if len(voices) > options.max_voices:
        raise InvalidConditioning(f"the score needs {len(voices)} simultaneous voices; max_voices is {options.max_voices}")
    end = max(float(notes[:, 1].max()) for _, notes in voices) + options.tail_s
    check_duration(end, options.max_duration_s, "the score")
    rate, hop = instrument.config.sample_rate, instrument.config.hop
    return voices, int(math.ceil(end * rate / hop)) + 1, max(1, int(chunk_s * rate / hop))


def render_score(instrument: Instrument, score: symusic.Score, options: NoteRenderOptions = NoteRenderOptions(),
                 seed: int = 0, chunk_s: float = 20.0, should_stop=None, progress=None) -> RenderedMidi:
    """Play every voice of ``score`` on ``instrument`` and mix them (one gain for mix and stems)."""
    from cadenza.fileio.audio import loudness_gain, resample

    voices, frames, chunk = _voices_to_play(instrument, score, options, chunk_s)
    rate, hop = instrument.config.sample_rate, instrument.config.hop
    stems = []
    for v, (_, notes) in enumerate(voices):
        f0, ld = note_controls(notes, frames, instrument, options)
        done = len(stems)
        gate = np.clip((ld - FLOOR_DB) / 20.0, 0.0, 1.0)  # silent before the first note and after the release
        stems.append(decode(instrument, f0, ld, seed + v, chunk, should_stop,
                            (lambda d, t, done=done: progress(done * t + d, len(voices) * t)) if progress else None,
                            gate))
    stems_arr = np.stack(stems)[:, : frames * hop]
    mix = stems_arr.sum(axis=0, keepdims=True)
    if options.sample_rate != rate:
        mix = resample(mix, rate, options.sample_rate)
        stems_arr = resample(stems_arr, rate, options.sample_rate)
    gain, loudness = 1.0, None
    peak = float(np.abs(mix).max())
    if options.normalize_lufs is not None and peak > 0:
        # one gain curve (level and peak limiting) for the mix and every stem, so the stems still sum to it
        gain, record = loudness_gain(mix, options.sample_rate, options.normalize_lufs)
        loudness = record.to_dict()
    elif peak > 10 ** (-1 / 20):
        gain = 10 ** (-1 / 20) / peak
    return RenderedMidi((mix * gain).astype(np.float32), [(s[None] * gain).astype(np.float32) for s in stems_arr],
                        [name for name, _ in voices], options.sample_rate, loudness)


@dataclass(frozen=True)
class ScoreStream:
    """A score ready to be played block by block: ``blocks()`` yields ``[1 + V, n] float32`` at
    ``sample_rate`` (row 0 the mix, then one row per voice, named ``voice_names``), at the level played
    (not normalised), from the start again at every call; ``frames`` samples in all at the instrument's rate."""

    voice_names: list[str]
    sample_rate: int
    frames: int
    blocks: Callable[[], Iterator[np.ndarray]]


def stream_score(instrument: Instrument, score: symusic.Score, options: NoteRenderOptions = NoteRenderOptions(),
                 seed: int = 0, chunk_s: float = 20.0, should_stop=None) -> ScoreStream:
    """``render_score``'s playing, one ``chunk_s`` chunk of every voice at a time: memory holds one chunk,
    whatever the length. At the instrument's own rate the mix and stems are the samples ``render_score``
    plays before its gain; at another ``options.sample_rate`` they are resampled as a stream (soxr), which
    matches resampling the whole to float rounding.

    Raises:
        CorruptInput: no pitched notes. InvalidConditioning: more voices than ``options.max_voices``.
    """
    voices, frames, chunk = _voices_to_play(instrument, score, options, chunk_s)
    rate, hop = instrument.config.sample_rate, instrument.config.hop

    def controls_of(notes: np.ndarray):
        def at(start: int, stop: int):
            f0, ld = note_controls(notes, stop - start, instrument, options, first=start)
            return f0, ld, np.clip((ld - FLOOR_DB) / 20.0, 0.0, 1.0)
        return at

    def blocks() -> Iterator[np.ndarray]:
        streams = [decode_stream(instrument, controls_of(notes), frames, seed + v, chunk, should_stop)
                   for v, (_, notes) in enumerate(voices)]
        resampler = None
        if options.sample_rate != rate:
            import soxr

            resampler = soxr.ResampleStream(rate, options.sample_rate, 1 + len(voices), dtype="float32", quality="HQ")
        for pieces in zip(*streams, strict=True):
            stems = np.stack(pieces)
            block = np.concatenate([stems.sum(axis=0, keepdims=True), stems]).astype(np.float32, copy=False)
            if resampler is not None:
                block = np.ascontiguousarray(resampler.resample_chunk(block.T).T)
            if block.shape[1]:
                yield block
        if resampler is not None:
            tail = np.ascontiguousarray(resampler.resample_chunk(np.zeros((0, 1 + len(voices)), np.float32), last=True).T)
            if tail.shape[1]:
                yield tail

    return ScoreStream([name for name, _ in voices], options.sample_rate, frames * hop, blocks)
