"""Training data for a DDSP instrument: folk melodies rendered solo through FluidSynth, f0 from the notes.

`prepare_instrument` picks single-line tunes (O'Neill's, Ryan's, Aird's) from a corpus folder
(MANIFEST.tsv + midi/), transposes each into the instrument's range, varies tempo, articulation and
dynamics, renders it dry and mono at 16 kHz with the instrument's General MIDI program, and stores
audio, ground-truth f0 (from the MIDI notes) and loudness. `prepare_folder` does the same for a folder
of recordings (f0 from the pitch tracker). Both write ``<out>/audio.npy``, ``f0.npy``, ``loudness.npy``,
``voiced.npy`` and ``dataset.json`` (pieces with their frame offsets, split, stats).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from cadenza.errors import InvalidConditioning
from cadenza.fileio import atomic_path, atomic_write_text
from cadenza.generators.ddsp.features import HOP, SAMPLE_RATE, loudness, n_frames

FOLK_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs")
CORPUS_LICENSE = "music21 corpus terms (distributed with permission; public-domain sources)"


@dataclass(frozen=True)
class InstrumentPreset:
    """A default instrument: General MIDI program and the MIDI pitch range its melodies are moved into."""

    program: int
    low: int
    high: int


PRESETS: dict[str, InstrumentPreset] = {
    "violin": InstrumentPreset(40, 55, 89),
    "flute": InstrumentPreset(73, 60, 91),
    "trumpet": InstrumentPreset(56, 54, 81),
    "clarinet": InstrumentPreset(71, 50, 84),
}


def folk_tunes(corpus: Path, min_s: float = 10.0, max_s: float = 120.0) -> list[Path]:
    """MIDI files of the single-line folk collections listed in ``corpus/MANIFEST.tsv``."""
    manifest = corpus / "MANIFEST.tsv"
    if not manifest.is_file():
        raise InvalidConditioning(f"{corpus}: no MANIFEST.tsv (give the converted corpus folder, e.g. ../shared/corpus)")
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    # a corpus rebuilt by `cadenza train symbolic` lists no lengths: then every tune is a candidate
    return [corpus / "midi" / r["path"] for r in rows
            if r["collection"] in FOLK_COLLECTIONS and min_s <= float(r.get("seconds") or min_s) <= max_s]


def melody_notes(path: Path) -> np.ndarray | None:
    """The notes of a single-line MIDI file as ``[n, 3]`` float64 rows (start s, end s, pitch), or
    None when it is not one melody (several tracks with notes, or chords)."""
    score = symusic.Score(path).to("second")
    tracks = [t for t in score.tracks if len(t.notes) and not t.is_drum]
    if len(tracks) != 1:
        return None
    n = tracks[0].notes.numpy()
    notes = np.stack([n["time"], n["time"] + n["duration"], n["pitch"]], axis=1).astype(np.float64)
    notes = notes[np.argsort(notes[:, 0], kind="stable")]
    if len(notes) < 8 or np.any(np.diff(notes[:, 0]) < 1e-3):  # two notes starting together: a chord
        return None
    return notes


def _performance(notes: np.ndarray, preset: InstrumentPreset, rng: np.random.Generator,
                 max_s: float) -> np.ndarray | None:
    """Transpose into range, scale the tempo, vary articulation and dynamics: ``[n, 4]`` (start, end,
    pitch, velocity), or None when the tune does not fit the instrument."""
    low, high = notes[:, 2].min(), notes[:, 2].max()
    shifts = [s for s in range(-36, 37) if low + s >= preset.low and high + s <= preset.high]
    if not shifts:
        return None
    out = notes.copy()
    out[:, 2] += rng.choice(shifts)
    out[:, :2] *= rng.uniform(0.8, 1.25)
    out = out[out[:, 0] < max_s]
    gap = np.append(out[1:, 0], out[-1, 1]) - out[:, 0]  # time to the next onset
    out[:, 1] = out[:, 0] + np.minimum(out[:, 1] - out[:, 0], gap) * rng.uniform(0.55, 1.0, len(out))
    level = np.cumsum(rng.normal(0.0, 6.0, len(out))) + rng.uniform(55, 105)
    level = np.clip(level, 35, 120)
    velocity = np.clip(level + rng.normal(0.0, 6.0, len(out)), 25, 127).round()
    return np.concatenate([out, velocity[:, None]], axis=1)


def f0_from_notes(notes: np.ndarray, frames: int, hop: int = HOP, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth ``(f0_hz [frames], sounding [frames] bool)`` of a melody ``[n, >=3]`` (start s, end s,
    pitch): the latest-started sounding note; between notes the previous pitch is held (releases)."""
    t = np.arange(frames) * hop / sample_rate
    idx = np.searchsorted(notes[:, 0], t, side="right") - 1  # the latest note started at or before t
    idx_clamped = np.maximum(idx, 0)
    pitch = notes[idx_clamped, 2]
    sounding = (idx >= 0) & (t < notes[idx_clamped, 1])
    f0 = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
    return f0.astype(np.float32), sounding


def _write_arrays(out: Path, audio: list[np.ndarray], f0: list[np.ndarray], ld: list[np.ndarray],
                  voiced: list[np.ndarray], info: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for name, parts in (("audio", audio), ("f0", f0), ("loudness", ld), ("voiced", voiced)):
        with atomic_path(out / f"{name}.npy") as tmp:
            np.save(tmp, np.concatenate(parts))
    sounding_ld = np.concatenate(ld)[np.concatenate(voiced)]
    pitch = 69.0 + 12.0 * np.log2(np.concatenate(f0)[np.concatenate(voiced)] / 440.0)
    info["stats"] = {"loudness_mean": float(sounding_ld.mean()), "loudness_p10": float(np.percentile(sounding_ld, 10)),
                     "loudness_p95": float(np.percentile(sounding_ld, 95)), "pitch_mean": float(pitch.mean()),
                     "pitch_low": float(np.percentile(pitch, 1)), "pitch_high": float(np.percentile(pitch, 99))}
    atomic_write_text(out / "dataset.json", json.dumps(info, indent=1) + "\n")
    return info


def prepare_instrument(instrument: str, corpus: Path, out: Path, minutes: float = 12.0, seed: int = 0,
                       max_piece_s: float = 30.0, soundfont: str | None = None, program: int | None = None) -> dict:
    """Render ~``minutes`` of solo melodies for ``instrument`` (a name in PRESETS, or any name with an
    explicit GM ``program``) into ``out``; returns the dataset summary written to ``dataset.json``."""
    from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions

    if instrument in PRESETS:
        preset = PRESETS[instrument]
        if program is not None:
            preset = InstrumentPreset(program, preset.low, preset.high)
    elif program is not None:
        preset = InstrumentPreset(program, 55, 84)
    else:
        raise InvalidConditioning(f"no preset for {instrument!r} (presets: {', '.join(PRESETS)}); pass --program N")
    rng = np.random.default_rng(seed)
    candidates = folk_tunes(corpus)
    rng.shuffle(candidates)
    options = RenderOptions(sample_rate=SAMPLE_RATE, gain=1.0, reverb=False, chorus=False, stereo=False,
                            normalize_lufs=None, tail_s=0.6, soundfont=soundfont)
    audio, f0s, lds, voiced, pieces = [], [], [], [], []
    total_frames, target = 0, minutes * 60 * SAMPLE_RATE / HOP
    with FluidSynthRenderer(options) as renderer:
        for path in candidates:
            if total_frames >= target:
                break
            notes = melody_notes(path)
            if notes is None:
                continue
            perf = _performance(notes, preset, rng, max_piece_s)
            if perf is None or len(perf) < 8:
                continue
            score = symusic.Score(1000)  # ticks per quarter; at the default 120 BPM, 2000 ticks per second
            track = symusic.Track("melody", program=preset.program)
            for start, end, pitch, vel in perf:
                track.notes.append(symusic.Note(int(round(start * 2000)), max(1, int(round((end - start) * 2000))),
                                                int(pitch), int(vel)))
            score.tracks.append(track)
            wav = renderer.render(score)[0]
            frames = n_frames(wav.shape[0]) - 1
            wav = np.pad(wav, (0, max(0, frames * HOP - wav.shape[0])))[: frames * HOP]
            f0, sounding = f0_from_notes(perf, frames)
            audio.append(wav.astype(np.float32))
            f0s.append(f0)
            voiced.append(sounding)
            pieces.append({"midi": str(path.relative_to(corpus / "midi")), "frame": total_frames, "frames": frames,
                           "transpose": int(round(perf[0, 2] - notes[0, 2]))})
            total_frames += frames
            print(f"\r{instrument}: {len(pieces)} tunes, {total_frames * HOP / SAMPLE_RATE / 60:.1f} min", end="",
                  file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if not pieces:
        raise InvalidConditioning(f"{corpus}: no single-line folk tunes found that fit {instrument}")
    # One gain for the whole set (dynamics between tunes kept), peak at -1 dBFS; loudness after it.
    gain = 0.89 / max(float(np.abs(a).max()) for a in audio)
    audio = [a * np.float32(gain) for a in audio]
    lds = [loudness(a)[: a.shape[0] // HOP].astype(np.float32) for a in audio]
    n_val = max(1, len(pieces) // 20)
    info = {"instrument": instrument, "program": preset.program, "range": [preset.low, preset.high],
            "source": "corpus melodies rendered with FluidSynth", "corpus": str(corpus),
            "collections": list(FOLK_COLLECTIONS), "license": CORPUS_LICENSE, "soundfont": str(renderer.soundfont),
            "seed": seed, "sample_rate": SAMPLE_RATE, "hop": HOP, "f0": "ground truth from the MIDI notes",
            "seconds": total_frames * HOP / SAMPLE_RATE, "gain": gain, "pieces": pieces,
            "validation_pieces": n_val}
    return _write_arrays(out, audio, f0s, lds, voiced, info)


def prepare_folder(folder: Path, out: Path, name: str) -> dict:
    """Features of every recording under ``folder`` (.wav/.flac/.ogg; monophonic, one instrument):
    f0 from the pitch tracker, voiced where it is confident."""
    from cadenza.generators.ddsp.features import extract
    from cadenza.fileio.audio import read_audio

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    if not files:
        raise InvalidConditioning(f"{folder}: no .wav/.flac/.ogg recordings found")
    audio, f0s, lds, voiced, pieces = [], [], [], [], []
    total = 0
    for path in files:
        samples, _ = read_audio(path, sample_rate=SAMPLE_RATE, mono=True)
        wav = samples[0]
        frames = n_frames(wav.shape[0]) - 1
        if frames < 100:
            continue
        wav = wav[: frames * HOP]
        feats = extract(wav)
        audio.append(wav)
        f0s.append(feats.f0_hz[:frames])
        lds.append(feats.loudness_db[:frames])
        voiced.append(feats.confidence[:frames] > 0.5)
        pieces.append({"file": str(path.relative_to(folder)), "frame": total, "frames": frames})
        total += frames
        print(f"\r{name}: {len(pieces)} files, {total * HOP / SAMPLE_RATE / 60:.1f} min", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if not pieces:
        raise InvalidConditioning(f"{folder}: every recording is shorter than 1 s")
    info = {"instrument": name, "source": f"recordings in {folder}", "license": "the recordings' own",
            "sample_rate": SAMPLE_RATE, "hop": HOP, "f0": "torchfcpe", "seconds": total * HOP / SAMPLE_RATE,
            "peak": max(float(np.abs(a).max()) for a in audio), "pieces": pieces,
            "validation_pieces": max(1, len(pieces) // 20) if len(pieces) > 1 else 0}
    return _write_arrays(out, audio, f0s, lds, voiced, info)
