"""Timbre transfer: a monophonic recording -> features -> an instrument's decoder -> audio.

Any sample rate and length: the input is resampled to 16 kHz; features are computed in chunks with a
second of context on each side, then decoding and synthesis run chunk by chunk carrying the GRU state
and the synthesizer's state, so a long file is processed in bounded steps without seams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from cadenza.errors import Cancelled, InvalidConditioning
from cadenza.generators.ddsp.features import HOP, SAMPLE_RATE, Features, PitchTracker, fill_unvoiced, loudness, n_frames
from cadenza.generators.ddsp.model import Instrument
from cadenza.generators.ddsp.synth import Controls, NoiseTable, SynthState, synthesize
from cadenza.music.theory import parse_key

CONTEXT_FRAMES = 100  # 1 s of audio each side of a feature chunk
FLOOR_DB = -120.0
MIN_SAMPLES = HOP  # one 10 ms frame at 16 kHz
SILENCE_DB = (-110.0, -95.0)  # source loudness: below the first the output is muted, above the second open


@dataclass(frozen=True)
class TransferOptions:
    """How the source is mapped onto the instrument.

    pitch_shift: semitones added (-48..48) after the automatic octave shift. loudness_shift: dB added
    (-40..40). quiet_db: how much quieter unvoiced frames (breaths, consonants, noise) are made (0..120).
    confidence: pitch-tracker confidence (0..1) above which a frame is voiced. autotune_key: snap the
    pitch toward the notes of this key ('D major'); autotune_amount: 0 (off) .. 1 (fully on the notes).
    auto_adjust: move the source by whole octaves to the instrument's register and map its loudness
    range onto the instrument's. chunk_s: seconds decoded per chunk (memory bound for long files).
    """

    pitch_shift: float = 0.0
    loudness_shift: float = 0.0
    quiet_db: float = 20.0
    confidence: float = 0.5
    autotune_key: str | None = None
    autotune_amount: float = 1.0
    auto_adjust: bool = True
    chunk_s: float = 20.0

    def __post_init__(self) -> None:
        checks = [
            (_finite(self.pitch_shift) and -48 <= self.pitch_shift <= 48, "pitch_shift must be -48..48 semitones"),
            (_finite(self.loudness_shift) and -40 <= self.loudness_shift <= 40, "loudness_shift must be -40..40 dB"),
            (_finite(self.quiet_db) and 0 <= self.quiet_db <= 120, "quiet_db must be 0..120 dB"),
            (_finite(self.confidence) and 0 <= self.confidence <= 1, "confidence must be 0..1"),
            (_finite(self.autotune_amount) and 0 <= self.autotune_amount <= 1, "autotune_amount must be 0..1"),
            (_finite(self.chunk_s) and 1 <= self.chunk_s <= 600, "chunk_s must be 1..600 seconds"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidConditioning(f"{message} (got {self})")
        if self.autotune_key is not None:
            object.__setattr__(self, "autotune_key", parse_key(self.autotune_key).name)

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def chunked_features(audio: np.ndarray, tracker: PitchTracker, chunk_frames: int,
                     should_stop: Callable[[], None] | None = None) -> Features:
    """Features of ``audio [N]`` (16 kHz) computed ``chunk_frames`` at a time with 1 s of context each
    side; returns ``N // 160 + 1`` frames. Loudness is exact (zero padding beyond the file's ends, as
    for the whole file); f0 differs from a whole-file pass only where the tracker looks > 1 s away."""
    total = n_frames(audio.shape[0])
    f0s, confs, lds = [], [], []
    for start in range(0, total, chunk_frames):
        if should_stop:
            should_stop()
        stop = min(start + chunk_frames, total)
        left = max(0, start - CONTEXT_FRAMES)
        right = min(total, stop + CONTEXT_FRAMES)
        segment = audio[left * HOP:right * HOP]
        # frame k of the segment is centred on sample (left + k) * hop of the file
        f0, conf = tracker.track(segment)
        ld = loudness(segment)
        lo, hi = start - left, stop - left
        f0s.append(f0[lo:hi])
        confs.append(conf[lo:hi])
        lds.append(ld[lo:hi])
    return Features(np.concatenate(f0s), np.concatenate(confs), np.concatenate(lds))


def autotune(pitch: np.ndarray, key: str, amount: float) -> np.ndarray:
    """Move MIDI ``pitch [F]`` toward the nearest note of ``key``'s scale by ``amount`` (0..1)."""
    scale = np.array(parse_key(key).scale_pitch_classes())
    octave = np.floor(pitch / 12.0)[:, None] * 12.0
    candidates = (octave + scale[None, :] + np.array([-12.0, 0.0, 12.0])[:, None, None]).transpose(1, 0, 2).reshape(len(pitch), -1)
    nearest = candidates[np.arange(len(pitch)), np.abs(candidates - pitch[:, None]).argmin(axis=1)]
    return pitch + amount * (nearest - pitch)


@dataclass(frozen=True)
class MappedControls:
    """Decoder inputs after mapping: ``f0_hz [F]``, ``loudness_db [F]``, ``gate [F]`` in 0..1 (0 mutes the
    instrument where the source is silent: a decoder need not have learned perfect silence); plus what
    was applied."""

    f0_hz: np.ndarray
    loudness_db: np.ndarray
    gate: np.ndarray
    octave_shift: int
    loudness_offset_db: float
    voiced_fraction: float


def map_controls(features: Features, instrument: Instrument, options: TransferOptions) -> MappedControls:
    """Pitch shift (auto octave + semitones), autotune, loudness mapping and quieting of unvoiced frames."""
    stats = instrument.stats
    voiced = (features.confidence >= options.confidence) & (features.f0_hz > 0)
    f0 = fill_unvoiced(np.where(voiced, features.f0_hz, 0.0).astype(np.float32), 440.0 * 2 ** ((stats.pitch_mean - 69) / 12))
    pitch = 69.0 + 12.0 * np.log2(f0 / 440.0)
    ld = features.loudness_db.astype(np.float64)
    low, high = SILENCE_DB
    gate = np.clip((ld - low) / (high - low), 0.0, 1.0) * float(voiced.any())
    octave, offset = 0, 0.0
    if voiced.any() and options.auto_adjust:
        octave = int(round((stats.pitch_mean - float(np.mean(pitch[voiced]))) / 12.0))
        src = ld[voiced]
        src_p10, src_p95 = np.percentile(src, 10), np.percentile(src, 95)
        scale = float(np.clip((stats.loudness_p95 - stats.loudness_p10) / max(src_p95 - src_p10, 1e-3), 0.5, 2.0))
        ld = (ld - src_p95) * scale + stats.loudness_p95
        offset = float(stats.loudness_p95 - src_p95)
    pitch = pitch + 12 * octave + options.pitch_shift
    if options.autotune_key is not None and options.autotune_amount > 0:
        pitch = autotune(pitch, options.autotune_key, options.autotune_amount)
    ld = ld + options.loudness_shift - np.where(voiced, 0.0, options.quiet_db)
    if not voiced.any():
        ld = np.full_like(ld, FLOOR_DB)  # nothing pitched: silence, not a drone
    pitch = np.clip(pitch, 12.0, 120.0)
    return MappedControls((440.0 * 2.0 ** ((pitch - 69.0) / 12.0)).astype(np.float32),
                          np.clip(ld, FLOOR_DB, 0.0).astype(np.float32), gate.astype(np.float32), octave, offset,
                          float(voiced.mean()))


def to_frames(controls: MappedControls, n_samples: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 100 frames/s controls at a model's own frame rate (``hop`` samples at 16 kHz; e.g. 64 for
    models converted from Magenta): ``(f0_hz, loudness_db, gate)``, each ``[n_samples // hop + 1]``."""
    if hop == HOP:
        return controls.f0_hz, controls.loudness_db, controls.gate
    position = np.arange(n_samples // hop + 1) * hop / HOP  # in 100 Hz frames
    source = np.arange(controls.f0_hz.shape[0])
    f0 = 2.0 ** np.interp(position, source, np.log2(controls.f0_hz))
    return (f0.astype(np.float32), np.interp(position, source, controls.loudness_db).astype(np.float32),
            np.interp(position, source, controls.gate).astype(np.float32))


def decode(instrument: Instrument, f0_hz: np.ndarray, loudness_db: np.ndarray, seed: int, chunk_frames: int,
           should_stop: Callable[[], None] | None = None, progress: Callable[[int, int], None] | None = None,
           gate: np.ndarray | None = None) -> np.ndarray:
    """Decoder + synthesizer over ``f0_hz, loudness_db [F]`` in chunks, the controls scaled by ``gate [F]``
    (0..1, default 1); returns ``[F * hop]`` float32."""
    def controls(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return f0_hz[start:stop], loudness_db[start:stop], None if gate is None else gate[start:stop]

    return np.concatenate(list(decode_stream(instrument, controls, f0_hz.shape[0], seed, chunk_frames, should_stop,
                                             progress)))


def decode_stream(instrument: Instrument, controls_at: Callable[[int, int], tuple], total: int, seed: int,
                  chunk_frames: int, should_stop: Callable[[], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
    """``decode`` one chunk at a time: ``controls_at(start, stop)`` gives frames ``start:stop`` of
    ``(f0_hz, loudness_db, gate or None)``; yields each chunk's audio ``[S] float32`` (``total * hop``
    samples in all, the same samples ``decode`` returns), so a voice of any length is played in bounded
    memory."""
    decoder = instrument.decoder
    device = next(decoder.parameters()).device
    noise = NoiseTable(seed)
    hidden, state = None, SynthState()
    for start in range(0, total, chunk_frames):
        if should_stop:
            should_stop()
        stop = min(start + chunk_frames, total)
        f0_np, ld_np, gate_np = controls_at(start, stop)
        # inference mode around each chunk only: held across a yield it would stay on in the caller's code
        with torch.inference_mode():
            f0 = torch.from_numpy(np.ascontiguousarray(f0_np))[None].to(device)
            ld = torch.from_numpy(np.ascontiguousarray(ld_np))[None].to(device)
            controls, hidden = decoder(f0, ld, hidden)
            if gate_np is not None:
                g = torch.from_numpy(np.ascontiguousarray(gate_np))[None, :, None].to(device)
                controls = Controls(controls.f0_hz, controls.harmonics * g, controls.noise * g)
            audio, state = synthesize(controls, decoder.config.hop, decoder.config.sample_rate, noise,
                                      decoder.reverb_ir, state, last=stop == total)
            piece = audio[0].float().cpu().numpy()
        yield piece
        if progress:
            progress(stop, total)


def transfer_audio(instrument: Instrument, audio: np.ndarray, sample_rate: int, tracker: PitchTracker,
                   options: TransferOptions = TransferOptions(), seed: int = 0,
                   should_stop: Callable[[], None] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, MappedControls]:
    """``audio [N]`` mono float32 at ``sample_rate`` -> ``(audio [N'] at 16 kHz, the controls used at
    100 frames/s)``.

    ``N' = round(N * 16000 / sample_rate)``; the output peak is kept at or below -1 dBFS.
    """
    from cadenza.fileio.audio import resample

    if audio.ndim != 1 or audio.shape[0] == 0:
        raise InvalidConditioning("transfer needs a non-empty mono signal")
    if not np.all(np.isfinite(audio)):
        raise InvalidConditioning("the source audio holds NaN or infinite samples")
    if sample_rate != SAMPLE_RATE:
        audio = resample(audio[None], sample_rate, SAMPLE_RATE)[0]
    n = audio.shape[0]
    if n < MIN_SAMPLES:  # found by fuzzing: the pitch tracker fails on an empty frame
        raise InvalidConditioning(f"the recording is too short to transfer ({n / SAMPLE_RATE * 1000:.1f} ms at "
                                  f"{SAMPLE_RATE} Hz); it needs at least {MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms")
    features = chunked_features(audio, tracker, max(1, int(options.chunk_s * SAMPLE_RATE / HOP)), should_stop)
    controls = map_controls(features, instrument, options)
    hop = instrument.config.hop
    f0, ld, gate = to_frames(controls, n, hop)
    out = decode(instrument, f0, ld, seed, max(1, int(options.chunk_s * SAMPLE_RATE / hop)), should_stop, progress,
                 gate)[:n]
    peak = float(np.abs(out).max()) if out.size else 0.0
    ceiling = 10 ** (-1 / 20)
    if peak > ceiling:
        out = out * np.float32(ceiling / peak)
    return out.astype(np.float32), controls


def raise_if(should_cancel: Callable[[], bool] | None) -> Callable[[], None] | None:
    """A ``should_stop()`` that raises Cancelled when ``should_cancel()`` says so."""
    if should_cancel is None:
        return None

    def check() -> None:
        if should_cancel():
            raise Cancelled("timbre transfer was cancelled")
    return check
