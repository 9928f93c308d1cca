"""MIDI -> audio with FluidSynth: one SoundFont load, reused for many files.

Why not ``fluidsynth -F`` or pyfluidsynth's ``midi2audio``: starting the program and loading a
148 MB SoundFont costs ~0.3-0.45 s per file, more than rendering a short piece. Here the SoundFont is
loaded once per renderer; each file becomes a list of timed events (tempo map applied by symusic) and
libfluidsynth is advanced by whole runs of samples between events, written straight into one float
array (no 16-bit round trip).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import symusic

from cadenza.errors import CorruptInput, InvalidConditioning, MissingDependency
from cadenza.outputs import AudioOutput, MidiOutput, Provenance
from cadenza.fileio.audio import Loudness, check_lufs, normalize_loudness, write_audio
from cadenza.fileio.audio_stream import check_capacity, write_stream
from cadenza.fileio.limits import (BLOCK_S, DEFAULT_MAX_DURATION_S, WHOLE_PIECE_MAX_S, check_duration,
                                   check_max_duration)
from cadenza.fileio.midi import load_midi, midi_duration_s, to_seconds

INSTALL_HINT = (
    "FluidSynth rendering needs the FluidSynth library, a General MIDI SoundFont and pyfluidsynth: "
    "run `sudo apt-get install fluidsynth fluid-soundfont-gm` and `pip install pyfluidsynth`"
)
SYSTEM_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
SOUNDFONT_ENV = "CADENZA_SOUNDFONT"

_CHANNELS = 256  # one channel per track, so tracks never share pedal, volume or pitch bend
_DRUM_CHANNEL = 9
_CHANNEL_TYPE_DRUM = 1  # enum fluid_midi_channel_type
_FLUID_WARN = 2  # enum fluid_log_level
# Event kinds, in the order they apply when they share a sample: releases first (so a repeated note is
# not cut by its predecessor's note-off), then controllers and bends, then new notes.
_OFF, _CC, _BEND, _ON = 0, 1, 2, 3


@dataclass(frozen=True)
class RenderOptions:
    """How MIDI becomes audio.

    sample_rate: output rate in Hz. gain: FluidSynth master gain (0.5 leaves headroom for dense
    GM files; the CLI default 0.2 is quiet). reverb / chorus: FluidSynth's built-in effects.
    stereo: ``False`` averages left and right into one channel. normalize_lufs: integrated loudness
    target (-70 to 0 LUFS; peaks kept at or below -1 dBFS); ``None`` keeps the synth's level. tail_s:
    seconds rendered after the last note ends, for releases and reverb. soundfont: path to an .sf2/.sf3;
    ``None`` searches (see ``find_soundfont``). max_duration_s: a score longer than this (tail included)
    is refused before anything is rendered (``InputTooLong``; None: no limit). A 45-byte MIDI file can
    ask for years of audio.
    """

    sample_rate: int = 44100
    gain: float = 0.5
    reverb: bool = True
    chorus: bool = False
    stereo: bool = True
    normalize_lufs: float | None = -14.0
    tail_s: float = 1.5
    soundfont: str | None = None
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or not 8000 <= self.sample_rate <= 192000:
            raise InvalidConditioning(f"sample_rate must be 8000-192000 Hz, got {self.sample_rate}")
        if not 0.0 < self.gain <= 10.0:
            raise InvalidConditioning(f"gain must be in (0, 10], got {self.gain}")
        if not 0.0 <= self.tail_s <= 60.0:
            raise InvalidConditioning(f"tail_s must be 0-60 seconds, got {self.tail_s}")
        check_lufs(self.normalize_lufs)
        check_max_duration(self.max_duration_s)


def find_soundfont(explicit: str | os.PathLike | None = None) -> Path:
    """The SoundFont to use: ``explicit``, then ``$CADENZA_SOUNDFONT``, then Debian's FluidR3_GM and
    default-GM, then the TimGM6mb.sf2 that ships inside the pretty_midi package.

    Raises:
        MissingDependency: an explicit or env path does not exist, or nothing was found.
    """
    for source, value in (("soundfont option", explicit), (SOUNDFONT_ENV, os.environ.get(SOUNDFONT_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise MissingDependency(f"SoundFont from {source} not found: {path}")
            return path
    candidates = [Path(p) for p in SYSTEM_SOUNDFONTS]
    spec = importlib.util.find_spec("pretty_midi")  # located, not imported: importing it is slow
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(d) / "TimGM6mb.sf2" for d in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path
    raise MissingDependency(f"no General MIDI SoundFont found. {INSTALL_HINT}, or pass --soundfont")


def check_available(options: RenderOptions = RenderOptions()) -> Path:
    """Fail fast, without loading anything heavy: pyfluidsynth and libfluidsynth import, and a
    SoundFont is found. Returns the SoundFont path.

    Raises:
        MissingDependency: with the commands that install what is missing.
    """
    _import_pyfluidsynth()
    return find_soundfont(options.soundfont)


def _import_pyfluidsynth():  # -> the pyfluidsynth module
    try:
        import fluidsynth  # pyfluidsynth; its import fails when libfluidsynth is missing
    except (ImportError, OSError) as e:
        raise MissingDependency(f"{INSTALL_HINT} ({e})") from e
    if not hasattr(fluidsynth, "Synth"):
        raise MissingDependency(f"the imported `fluidsynth` module is not pyfluidsynth. {INSTALL_HINT}")
    return fluidsynth


class FluidSynthRenderer:
    """Renders scores with FluidSynth, loading the SoundFont once for any number of files.

    Each ``render`` plays on a brand-new FluidSynth synth (~1.5 ms to create) that borrows the
    already-loaded SoundFont, so every file sounds exactly as it would from a fresh ``fluidsynth``
    process whatever was rendered before. Resetting one long-lived synth is not enough with
    FluidSynth 2.3 (measured): ``system_reset`` leaves voices held by a sustain pedal sounding, reverb
    and chorus keep their delay lines and modulation phase, and a voice slot used before starts its
    first block differently from a fresh one.

    Not thread-safe: use one renderer per thread or process. ``close()`` (or ``with``) frees it.
    """

    def __init__(self, options: RenderOptions = RenderOptions()) -> None:
        fluidsynth = _import_pyfluidsynth()
        self.options = options
        self.soundfont = find_soundfont(options.soundfont)
        self._lib = _bind(fluidsynth.lib)
        # This synth never plays: it holds the settings every per-file synth is made from, and owns
        # the loaded SoundFont.
        self._owner = fluidsynth.Synth(
            gain=float(options.gain),
            samplerate=int(options.sample_rate),
            channels=_CHANNELS,
            **{
                "synth.reverb.active": int(options.reverb),
                "synth.chorus.active": int(options.chorus),
                # One thread drives each synth: skip the per-call mutex.
                "synth.threadsafe-api": 0,
                # Read only the samples of the instruments files use (pinned in _keep_loaded): a
                # worker starts in ~0.03 s instead of reading all 148 MB of FluidR3_GM (0.3-0.9 s).
                "synth.dynamic-sample-loading": int(self._lib.pin_preset is not None),
            },
        )
        self._sfid = self._owner.sfload(str(self.soundfont))
        if self._sfid < 0:
            self.close()
            raise MissingDependency(f"FluidSynth could not load the SoundFont {self.soundfont}")
        self._sfont = self._lib.get_sfont_by_id(self._owner.synth, self._sfid)
        self._presets: dict[tuple[int, int], int] = {}  # (bank, program) -> program actually pinned
        # Every new synth first puts piano (0, 0) on each channel and the standard kit (128, 0) on the
        # drum channel; unpinned, their samples would be read and dropped again for every file.
        self._keep_loaded(0, 0)
        self._keep_loaded(128, 0)

    def __enter__(self) -> FluidSynthRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free FluidSynth and the SoundFont. The renderer cannot be used afterwards."""
        if self._owner is not None:
            self._owner.delete()
            self._owner = None

    def render(self, score_or_path: symusic.Score | str | os.PathLike) -> np.ndarray:
        """Render a score (or a MIDI file) to audio.

        Returns:
            ``[C, N] float32`` at ``options.sample_rate`` Hz; C = 2 (stereo) or 1; N frames cover
            the end of the last note plus ``options.tail_s`` seconds.

        Raises:
            CorruptInput: the file cannot be read, or the score has no notes.
        """
        return self.render_measured(score_or_path)[0]

    def render_measured(self, score_or_path: symusic.Score | str | os.PathLike) -> tuple[np.ndarray, Loudness | None]:
        """``render``, and what loudness normalisation reached (None when ``normalize_lufs`` is None).

        Returns the whole piece: to write pieces of any length in bounded memory, ``render_to_file``. A piece
        longer than ``WHOLE_PIECE_MAX_S`` gets its loudness as ``render_to_file`` streams it, so the two give
        the same samples whatever the length.

        Raises:
            InputTooLong: the piece is longer than ``options.max_duration_s``.
        """
        score, frames = self._prepare(score_or_path)
        if self.options.normalize_lufs is not None and frames > WHOLE_PIECE_MAX_S * self.options.sample_rate:
            return self._streamed_in_memory(score)
        return self._render_whole(score, frames)

    def _render_whole(self, score: symusic.Score, frames: int) -> tuple[np.ndarray, Loudness | None]:
        sr = self.options.sample_rate
        # Interleaved [N, 2], as FluidSynth writes and soundfile reads it: no copy on either side.
        out = np.zeros((frames, 2), dtype=np.float32)
        with self._fresh_synth() as (synth, sfid):
            channels = self._select_instruments(synth, sfid, score)
            _play(self._lib, synth, _events(score, sr, frames, channels), out)
        audio = out.T if self.options.stereo else out.mean(axis=1, dtype=np.float32)[None, :]
        if self.options.normalize_lufs is None:
            return audio, None
        return normalize_loudness(audio, sr, self.options.normalize_lufs)

    def _streamed_in_memory(self, score: symusic.Score) -> tuple[np.ndarray, Loudness | None]:
        """A long piece set to its loudness exactly as ``render_to_file`` streams it (so that a file made
        either way, and its remake, are the same bits), through a temporary float WAV file."""
        import tempfile

        from cadenza.fileio.audio import read_audio

        with tempfile.TemporaryDirectory(prefix="cadenza-render-") as folder:
            path = Path(folder) / "piece.wav"
            loudness = self.render_to_file(score, path, subtype="FLOAT")
            samples, _ = read_audio(path)
        return samples, loudness

    def render_to_file(self, score_or_path: symusic.Score | str | os.PathLike, path: str | os.PathLike,
                       block_s: float = BLOCK_S, whole_max_s: float = WHOLE_PIECE_MAX_S,
                       subtype: str | None = None) -> Loudness | None:
        """Render to an audio file (format by suffix), atomically, in memory bounded whatever the length.

        A piece up to ``whole_max_s`` seconds is rendered whole; a longer one is played ``block_s`` seconds at a time and written as it is played (twice or three
        times when it is normalised: see ``fileio.audio_stream.write_stream``; FluidSynth plays the same
        every time). Returns what loudness normalisation did (None when not asked).

        Raises:
            InputTooLong: the piece is longer than ``options.max_duration_s`` (checked before rendering).
            CorruptInput: the file cannot be read, or the score has no notes.
            OutputError: the file cannot be written.
        """
        score, frames = self._prepare(score_or_path)
        sr = self.options.sample_rate
        check_capacity(path, frames, 2 if self.options.stereo else 1, sr, subtype)
        if frames <= whole_max_s * sr:
            samples, loudness = self._render_whole(score, frames)
            write_audio(path, samples, sr, subtype)
            return loudness
        block = max(1, int(block_s * sr))
        return write_stream(path, lambda: self.blocks(score, block), sr, 2 if self.options.stereo else 1,
                            self.options.normalize_lufs, subtype)

    def blocks(self, score_or_path: symusic.Score | str | os.PathLike, block_frames: int) -> Iterator[np.ndarray]:
        """The piece as consecutive ``[C, n] float32`` blocks of ``block_frames`` samples (the last one
        shorter), at the synth's own level (no normalisation): the same samples ``render`` makes without
        ``normalize_lufs``, bit for bit, holding one block at a time.

        Raises:
            InputTooLong: the piece is longer than ``options.max_duration_s`` (checked before rendering).
        """
        score, frames = self._prepare(score_or_path)
        sr = self.options.sample_rate
        buf = np.zeros((max(1, int(block_frames)), 2), dtype=np.float32)
        with self._fresh_synth() as (synth, sfid):
            channels = self._select_instruments(synth, sfid, score)
            events = _events(score, sr, frames, channels)
            starts = events[:, 0]
            pos = 0
            while pos < frames:
                n = min(buf.shape[0], frames - pos)
                out = buf[:n]
                lo, hi = np.searchsorted(starts, [pos, pos + n], side="left")
                part = events[lo:hi].copy()
                part[:, 0] -= pos
                _play(self._lib, synth, part, out)
                pos += n
                yield out.T.copy() if self.options.stereo else out.mean(axis=1, dtype=np.float32)[None, :]

    def _prepare(self, score_or_path: symusic.Score | str | os.PathLike) -> tuple[symusic.Score, int]:
        """``(the score in seconds, frames to render)``, once the piece is playable and within the limit."""
        if self._owner is None:
            raise RuntimeError("this FluidSynthRenderer was closed")
        score = score_or_path if isinstance(score_or_path, symusic.Score) else load_midi(score_or_path)
        score = to_seconds(score)
        duration = midi_duration_s(score)
        if not duration > 0.0:
            raise CorruptInput("the score has no notes (or only zero-length ones): nothing to play")
        check_duration(duration + self.options.tail_s, self.options.max_duration_s, "the score")
        return score, math.ceil((duration + self.options.tail_s) * self.options.sample_rate)

    @contextlib.contextmanager
    def _fresh_synth(self) -> Iterator[tuple[int, int]]:
        """A new synth with the shared SoundFont; yields ``(synth pointer, SoundFont id in it)``."""
        lib = self._lib
        synth = lib.new_synth(self._owner.settings)
        if not synth:
            raise RuntimeError("FluidSynth could not create a synthesizer")
        try:
            sfid = lib.add_sfont(synth, self._sfont)
            if sfid < 0:
                raise RuntimeError(f"FluidSynth could not attach the SoundFont {self.soundfont}")
            yield synth, sfid
        finally:
            # Detach before deleting, or delete_fluid_synth would free the shared SoundFont. Detaching
            # resets every channel's program and warns once per channel that none is left: mute that
            # (the log function is process-wide; warnings from other threads in this instant are lost).
            previous = lib.set_log_function(_FLUID_WARN, None, None)
            try:
                lib.remove_sfont(synth, self._sfont)
            finally:
                lib.set_log_function(_FLUID_WARN, previous, None)
            lib.delete_synth(synth)

    def _select_instruments(self, synth: int, sfid: int, score: symusic.Score) -> list[int]:
        """Give each track its own MIDI channel, select its instrument there; return the channels."""
        lib = self._lib
        pools = {
            False: [c for c in range(_CHANNELS) if c % 16 != _DRUM_CHANNEL],
            True: [c for c in range(_CHANNELS) if c % 16 == _DRUM_CHANNEL],
        }
        used = {False: 0, True: 0}
        channels = []
        for track in score.tracks:
            drum = bool(track.is_drum)
            # Beyond 240 melodic / 16 drum tracks, tracks share channels (and their controllers).
            chan = pools[drum][used[drum] % len(pools[drum])]
            used[drum] += 1
            channels.append(chan)
            if drum and lib.set_channel_type is not None:
                lib.set_channel_type(synth, chan, _CHANNEL_TYPE_DRUM)
            bank = 128 if drum else 0
            program = self._keep_loaded(bank, int(track.program))
            # A SoundFont without this exact preset falls back to the bank's first one, as GM synths do.
            if lib.program_select(synth, chan, sfid, bank, program) != 0:
                lib.program_select(synth, chan, sfid, bank, 0)
        return channels

    def _keep_loaded(self, bank: int, program: int) -> int:
        """With dynamic sample loading, pin a preset's samples in memory the first time a file uses it
        (a per-file synth alone would unload them when it is deleted). Returns the program to select:
        ``program``, or 0 when the SoundFont lacks it."""
        if self._lib.pin_preset is None:
            return program
        key = (bank, program)
        if key not in self._presets:
            if self._lib.pin_preset(self._owner.synth, self._sfid, bank, program) == 0:
                self._presets[key] = program
            else:
                self._presets[key] = 0
                self._lib.pin_preset(self._owner.synth, self._sfid, bank, 0)
        return self._presets[key]


def render_output(output: MidiOutput, options: RenderOptions = RenderOptions()) -> AudioOutput:
    """``output`` played through FluidSynth with ``options``; its provenance gains ``rendered_with``,
    ``render_options``, ``soundfont`` (the file played, with its sha256, so a remake can tell it changed)
    and ``loudness`` (what normalisation reached). ``Studio.render`` is the public way; this is its
    FluidSynth half. Holds the piece whole: ``render_output_to`` writes a file of any length.

    Raises:
        CorruptInput: the score has no notes.
        InputTooLong: the score is longer than ``options.max_duration_s``.
        MissingDependency: FluidSynth or a SoundFont is not installed.
    """
    with FluidSynthRenderer(options) as renderer:
        samples, loudness = renderer.render_measured(output.score)
        provenance = _rendered(output, options, renderer.soundfont, loudness)
    return AudioOutput(samples, options.sample_rate, provenance)


def render_output_to(output: MidiOutput, path: str | os.PathLike, options: RenderOptions = RenderOptions()) -> Provenance:
    """``output`` played through FluidSynth into the audio file ``path`` (format by suffix, atomically,
    in blocks: memory stays bounded whatever the length); returns the provenance ``render_output`` would
    give (for the sidecar; ``Studio.render_to`` writes it).

    Raises:
        as ``render_output``, and OutputError: the file cannot be written.
    """
    with FluidSynthRenderer(options) as renderer:
        loudness = renderer.render_to_file(output.score, path)
        return _rendered(output, options, renderer.soundfont, loudness)


def _rendered(output: MidiOutput, options: RenderOptions, soundfont_path: Path, loudness: Loudness | None) -> Provenance:
    from cadenza.fileio.hashes import cached_sha256

    soundfont = {"path": str(soundfont_path.resolve()), "sha256": cached_sha256(soundfont_path)}
    notes = {**output.provenance.notes, "rendered_with": "fluidsynth", "render_options": asdict(options),
             "soundfont": soundfont, **({"loudness": loudness.to_dict()} if loudness is not None else {})}
    return Provenance(**{**asdict(output.provenance), "notes": notes})


def _play(lib: _Lib, synth: int, events: np.ndarray, out: np.ndarray) -> None:
    """Apply ``events [E, 5]`` rows ``(frame, kind, channel, a, b)`` while synthesising ``out [N, 2]``
    (C-contiguous, left and right interleaved).

    Between two events the synth renders the whole gap in one call, straight into ``out``.
    """
    noteon, noteoff, cc, bend = lib.noteon, lib.noteoff, lib.cc, lib.pitch_bend
    write, buf = lib.write_float, out.ctypes.data
    pos = 0
    for frame, kind, chan, a, b in events.tolist():
        if frame > pos:
            write(synth, frame - pos, buf, 2 * pos, 2, buf, 2 * pos + 1, 2)
            pos = frame
        if kind == _ON:
            noteon(synth, chan, a, b)
        elif kind == _OFF:
            noteoff(synth, chan, a)
        elif kind == _CC:
            cc(synth, chan, a, b)
        else:
            bend(synth, chan, a)
    if out.shape[0] > pos:
        write(synth, out.shape[0] - pos, buf, 2 * pos, 2, buf, 2 * pos + 1, 2)


def _events(score: symusic.Score, sr: int, frames: int, channels: list[int]) -> np.ndarray:
    """Every note, control change and pitch bend of a seconds-based score as ``[E, 5] int64`` rows
    ``(frame, kind, channel, a, b)``, sorted by frame then kind, dropping events at or past ``frames``."""
    parts = []
    for track, chan in zip(score.tracks, channels, strict=True):
        if len(track.notes):
            n = track.notes.numpy()
            on = np.rint(n["time"].astype(np.float64) * sr).astype(np.int64)
            off = np.rint((n["time"].astype(np.float64) + n["duration"]) * sr).astype(np.int64)
            # A zero-length note still gets its note-off after the note-on; FluidSynth then keeps it
            # for its minimum note length instead of letting it ring to the end.
            off = np.maximum(off, on + 1)
            pitch = n["pitch"].astype(np.int64)
            vel = n["velocity"].astype(np.int64)
            parts.append(_rows(on, _ON, chan, pitch, vel))
            parts.append(_rows(off, _OFF, chan, pitch, np.zeros_like(pitch)))
        if len(track.controls):
            c = track.controls.numpy()
            t = np.rint(c["time"].astype(np.float64) * sr).astype(np.int64)
            parts.append(_rows(t, _CC, chan, c["number"].astype(np.int64), c["value"].astype(np.int64)))
        if len(track.pitch_bends):
            p = track.pitch_bends.numpy()
            t = np.rint(p["time"].astype(np.float64) * sr).astype(np.int64)
            # MIDI bends are -8192..8191 around 0; FluidSynth takes 0..16383 around 8192.
            value = np.clip(p["value"].astype(np.int64) + 8192, 0, 16383)
            parts.append(_rows(t, _BEND, chan, value, np.zeros_like(value)))
    events = np.concatenate(parts) if parts else np.zeros((0, 5), dtype=np.int64)
    events = events[(events[:, 0] >= 0) & (events[:, 0] < frames)]
    order = np.lexsort((events[:, 1], events[:, 0]))
    return events[order]


def _rows(frame: np.ndarray, kind: int, chan: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.stack([frame, np.full_like(frame, kind), np.full_like(frame, chan), a, b], axis=1)


@dataclass(frozen=True)
class _Lib:
    """The libfluidsynth calls we make ourselves, bound with ctypes.

    pyfluidsynth has no float output (its ``get_samples`` returns 16-bit integers, clipped and
    quantised before our loudness normalisation), no way to share a SoundFont between synths, and
    Python-side argument checks on every note; these go to the C library directly.
    """

    new_synth: Callable[..., int]
    delete_synth: Callable[..., None]
    get_sfont_by_id: Callable[..., int]
    add_sfont: Callable[..., int]
    remove_sfont: Callable[..., int]
    set_log_function: Callable[..., int | None]
    program_select: Callable[..., int]
    pin_preset: Callable[..., int] | None
    set_channel_type: Callable[..., int] | None
    noteon: Callable[..., int]
    noteoff: Callable[..., int]
    cc: Callable[..., int]
    pitch_bend: Callable[..., int]
    write_float: Callable[..., int]


def _bind(lib_name: str) -> _Lib:
    lib = ctypes.CDLL(lib_name)  # already loaded by pyfluidsynth: this only returns its handle
    vp, i = ctypes.c_void_p, ctypes.c_int

    def fn(name: str, restype: type | None, *argtypes: type) -> Callable[..., int]:
        f = getattr(lib, name)
        f.argtypes, f.restype = list(argtypes), restype
        return f

    return _Lib(
        new_synth=fn("new_fluid_synth", vp, vp),
        delete_synth=fn("delete_fluid_synth", None, vp),
        get_sfont_by_id=fn("fluid_synth_get_sfont_by_id", vp, vp, i),
        add_sfont=fn("fluid_synth_add_sfont", i, vp, vp),
        remove_sfont=fn("fluid_synth_remove_sfont", i, vp, vp),
        set_log_function=fn("fluid_set_log_function", vp, i, vp, vp),
        program_select=fn("fluid_synth_program_select", i, vp, i, i, i, i),
        # FluidSynth >= 2.2; without it the whole SoundFont is loaded up front.
        pin_preset=fn("fluid_synth_pin_preset", i, vp, i, i, i) if hasattr(lib, "fluid_synth_pin_preset") else None,
        # FluidSynth < 2.0 lacks it; there drum tracks still play on channel 9 of each 16.
        set_channel_type=(
            fn("fluid_synth_set_channel_type", i, vp, i, i) if hasattr(lib, "fluid_synth_set_channel_type") else None
        ),
        noteon=fn("fluid_synth_noteon", i, vp, i, i, i),
        noteoff=fn("fluid_synth_noteoff", i, vp, i, i),
        cc=fn("fluid_synth_cc", i, vp, i, i, i),
        pitch_bend=fn("fluid_synth_pitch_bend", i, vp, i, i),
        write_float=fn("fluid_synth_write_float", i, vp, i, vp, i, i, vp, i, i),
    )
