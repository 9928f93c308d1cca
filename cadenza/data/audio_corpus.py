"""Captioned audio clips made offline from the symbolic corpus: the training data of the audio families.

No audio dataset ships in a package we may use, so we make one: each clip is a random excerpt of a
corpus work, transposed, played faster or slower, and rendered through FluidSynth with General MIDI
instruments picked per clip (a solo instrument for single-line tunes, an ensemble for part music).
Because the score is known, the caption is exact: "a solo flute playing an Irish reel in D major at
126 BPM". The codec, the codec LM and the diffusion model all train on the same ``clips.jsonl``.

Layout of ``out_dir``::

    clips.jsonl          one `ClipRecord` per line (JSON)
    clips/000123.flac    16-bit FLAC, mono, ``sample_rate`` Hz, exactly ``clip_s`` seconds
    clips/000123.mid     the score that clip was rendered from (time 0 = the clip's first sample): the
                         score conditioning of the audio families reads its notes
    BUILD.json           the `AudioCorpusConfig` used (rebuild = same config, same seed)
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cadenza.data.splits import SPLITS, split_of
from cadenza.errors import CorruptInput, InvalidConditioning
from cadenza.data.sketch import CLIP_LUFS

# Collections used by default: public-domain sources distributed with music21. Essen (non-commercial),
# Josquin (GPL encodings) and Palestrina (rights reserved) are left out so the models stay Apache-2.0.
DEFAULT_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs", "bach", "miscFolk", "beethoven", "mozart", "haydn",
                       "trecento", "monteverdi")
COLLECTION_DESCRIPTION = {
    "oneills1850": "an Irish {form}", "ryansMammoth": "an Irish {form}", "airdsAirs": "a Scottish {form}",
    "bach": "a Bach chorale", "miscFolk": "a folk song", "beethoven": "a string quartet movement by Beethoven",
    "mozart": "a classical piece by Mozart", "haydn": "a classical string quartet by Haydn",
    "trecento": "a medieval Italian song", "monteverdi": "a Renaissance madrigal",
}

# Solo instruments for single-line tunes: GM program, a usable MIDI pitch range (lowest, highest).
SOLO_INSTRUMENTS: dict[str, tuple[int, tuple[int, int]]] = {
    "piano": (0, (36, 96)), "violin": (40, (55, 100)), "flute": (73, (60, 96)), "trumpet": (56, (55, 82)),
    "clarinet": (71, (50, 89)), "oboe": (68, (58, 91)), "cello": (42, (36, 76)), "acoustic guitar": (24, (40, 84)),
    "harp": (46, (36, 96)), "accordion": (21, (48, 89)), "marimba": (12, (45, 96)), "church organ": (19, (36, 96)),
    "alto sax": (65, (49, 81)), "pan flute": (75, (60, 96)), "vibraphone": (11, (53, 89)), "tin whistle": (78, (62, 98)),
}
# Ensembles for part music: name -> programs assigned to the tracks from the top voice down.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "string quartet": (40, 40, 41, 42), "piano": (0,), "church organ": (19,), "brass quartet": (56, 56, 60, 57),
    "woodwind quartet": (73, 68, 71, 70), "choir": (52,), "harpsichord": (6,), "string orchestra": (48,),
}


@dataclass(frozen=True)
class AudioCorpusConfig:
    """How the clips are made. ``clips`` excerpts of ``clip_s`` seconds at ``sample_rate`` Hz."""

    clips: int = 3000
    clip_s: float = 8.0
    sample_rate: int = 16000
    seed: int = 0
    collections: tuple[str, ...] = DEFAULT_COLLECTIONS
    tempo_range: tuple[float, float] = (0.8, 1.25)
    transpose_range: tuple[int, int] = (-5, 6)
    loudness_lufs: float = CLIP_LUFS

    def __post_init__(self) -> None:
        if not 1 <= self.clips <= 1_000_000:
            raise InvalidConditioning(f"clips must be 1-1000000, got {self.clips}")
        if not 0.5 <= self.clip_s <= 60:
            raise InvalidConditioning(f"clip_s must be 0.5-60 s, got {self.clip_s}")


@dataclass(frozen=True)
class ClipRecord:
    """One line of ``clips.jsonl``. ``path`` is relative to the corpus folder."""

    id: str
    path: str
    caption: str
    seconds: float
    sample_rate: int
    split: str
    instruments: tuple[str, ...]
    programs: tuple[int, ...]
    style: str
    key: str
    tempo_bpm: float
    time_signature: str
    work: str
    collection: str
    transpose: int
    license: str
    solo: bool = field(default=True)

    def to_json(self) -> str:
        data = asdict(self)
        data["instruments"], data["programs"] = list(self.instruments), list(self.programs)
        return json.dumps(data)

    @classmethod
    def from_json(cls, line: str) -> ClipRecord:
        data = json.loads(line)
        data["instruments"], data["programs"] = tuple(data["instruments"]), tuple(data["programs"])
        return cls(**data)


def read_clips(corpus_dir: str | os.PathLike, split: str | None = None) -> list[ClipRecord]:
    """The clips of ``<corpus_dir>/clips.jsonl`` (optionally one split: train / validation / test)."""
    path = Path(corpus_dir) / "clips.jsonl"
    if not path.is_file():
        raise CorruptInput(f"{path} does not exist: build the clips with `cadenza train audio-data`")
    records = [ClipRecord.from_json(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if split is None or r.split == split]


def tempo_word(bpm: float) -> str:
    return "slow" if bpm < 80 else "moderate" if bpm < 110 else "lively" if bpm < 140 else "fast"


def form_of(time_signature: str, bpm: float) -> str:
    """A dance or tune form name for single-line folk tunes, from meter and tempo."""
    if time_signature in ("6/8", "12/8"):
        return "jig"
    if time_signature == "9/8":
        return "slip jig"
    if time_signature == "3/4":
        return "waltz" if bpm >= 100 else "air"
    if time_signature in ("2/4", "4/4", "2/2"):
        return "reel" if bpm >= 110 else "hornpipe" if bpm >= 90 else "air"
    return "tune"


def caption_for(*, instruments: tuple[str, ...], solo: bool, collection: str, key: str, bpm: float,
                time_signature: str, rng: random.Random) -> str:
    """A one-sentence caption; word order varies (seeded) so the text encoder sees paraphrases."""
    what = COLLECTION_DESCRIPTION.get(collection, "a classical piece").format(form=form_of(time_signature, bpm))
    who = (f"a solo {instruments[0]}" if solo else f"a {instruments[0]}" if len(instruments) == 1
           else "a " + instruments[0])
    mood = tempo_word(bpm)
    bare_what = what.split(" ", 1)[1]  # without its article
    templates = (
        f"{who} playing {what} in {key}, {round(bpm)} BPM",
        f"a {mood} {bare_what} played by {who} in {key} at {round(bpm)} BPM",
        f"{what} in {key} for {who.split(' ', 1)[1]}, {mood}, {round(bpm)} BPM, {time_signature} time",
    )
    return rng.choice(templates)


def _choose_solo(pitches: np.ndarray, rng: random.Random) -> tuple[str, int, int]:
    """(instrument, program, transpose) with the transposed line inside the instrument's range."""
    low, high = int(pitches.min()), int(pitches.max())
    names = list(SOLO_INSTRUMENTS)
    rng.shuffle(names)
    for name in names:
        program, (lo, hi) = SOLO_INSTRUMENTS[name]
        shift = rng.randint(-5, 6)
        for octave in (0, -12, 12, -24, 24):
            if lo <= low + shift + octave and high + shift + octave <= hi:
                return name, program, shift + octave
    return "piano", 0, 0


def make_clip(score, collection: str, config: AudioCorpusConfig, rng: random.Random):
    """Pick the excerpt, instruments, transposition and tempo of one clip.

    Returns ``(clip_score [seconds], instruments, programs, transpose, bpm, time_signature, solo)`` or
    ``None`` when the work is too short or silent.
    """
    import symusic

    score = score.copy()
    tracks = [t for t in score.tracks if len(t.notes) > 0 and not t.is_drum]
    if not tracks:
        return None
    factor = rng.uniform(*config.tempo_range)
    for tempo in score.tempos:
        tempo.qpm = tempo.qpm * factor
    bpm = float(score.tempos[0].qpm) if len(score.tempos) else 120.0 * factor
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    time_signature = f"{ts.numerator}/{ts.denominator}" if ts is not None else "4/4"
    solo = len(tracks) == 1
    pitches = np.concatenate([t.notes.numpy()["pitch"] for t in tracks])
    if solo:
        name, program, transpose = _choose_solo(pitches, rng)
        instruments, programs = (name,), (program,)
    else:
        transpose = rng.randint(*config.transpose_range)
        name = rng.choice(list(ENSEMBLES))
        programs = ENSEMBLES[name]
        instruments = (name,)
    ordered = sorted(tracks, key=lambda t: -float(np.mean(t.notes.numpy()["pitch"])))  # top voice first
    fresh = symusic.Score(score.ticks_per_quarter)
    fresh.tempos, fresh.time_signatures = score.tempos, score.time_signatures
    for index, track in enumerate(ordered):
        track = track.copy()
        track.program = programs[min(index, len(programs) - 1)]
        track.is_drum = False
        fresh.tracks.append(track)
    score = fresh.shift_pitch(transpose).to("second")
    end = float(score.end())
    if end < 1.0:
        return None
    start = rng.uniform(0.0, max(0.0, end - config.clip_s))
    clip = score.clip(start, start + config.clip_s, clip_end=True).shift_time(-start)
    if clip.note_num() == 0:
        return None
    return clip, instruments, programs, transpose, bpm, time_signature, solo


def build_audio_corpus(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       config: AudioCorpusConfig = AudioCorpusConfig(), progress: bool = True) -> dict:
    """Render ``config.clips`` captioned clips from ``corpus_dir`` (MANIFEST.tsv + midi/) into ``out_dir``.

    Resumable: clips already listed in ``clips.jsonl`` are kept and numbering continues. Deterministic
    for a given config (clip i uses ``Random(seed * 1_000_003 + i)``). Returns a summary dict.
    """
    from cadenza.data.corpus import read_manifest
    from cadenza.fileio import atomic_write_text
    from cadenza.music.theory import estimate_key, score_pitch_class_histogram
    from cadenza.fileio.audio import loudness_normalize, write_audio
    from cadenza.render.fluidsynth import FluidSynthRenderer
    from cadenza.data.sketch import clip_render_options
    from cadenza.fileio.midi import load_midi

    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    entries = [e for e in read_manifest(corpus_dir) if e.collection in config.collections]
    if not entries:
        raise CorruptInput(f"{corpus_dir}: no works from the collections {', '.join(config.collections)}")
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "BUILD.json", json.dumps(asdict(config), indent=1) + "\n")
    jsonl = out_dir / "clips.jsonl"
    done = sum(1 for line in jsonl.read_text().splitlines() if line.strip()) if jsonl.exists() else 0
    frames = int(round(config.clip_s * config.sample_rate))
    options = clip_render_options(config.sample_rate)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.clips, initial=done, unit="clip", desc="rendering clips")
    index, failures = done, 0
    with FluidSynthRenderer(options) as renderer, open(jsonl, "a") as sink:
        while index < config.clips:
            rng = random.Random(config.seed * 1_000_003 + index + failures * 7_919_993)
            entry = rng.choice(entries)
            try:
                made = make_clip(load_midi(corpus_dir / "midi" / entry.path), entry.collection, config, rng)
            except CorruptInput:
                made = None
            if made is None:
                failures += 1
                continue
            clip, instruments, programs, transpose, bpm, time_signature, solo = made
            audio = renderer.render(clip)[:, :frames]
            if audio.shape[1] < frames:
                audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))
            if float(np.sqrt(np.mean(audio ** 2))) < 1e-4:
                failures += 1
                continue
            audio = loudness_normalize(audio, config.sample_rate, config.loudness_lufs)
            key = estimate_key(score_pitch_class_histogram(clip)).name
            caption = caption_for(instruments=instruments, solo=solo, collection=entry.collection, key=key, bpm=bpm,
                                  time_signature=time_signature, rng=rng)
            clip_id = f"{index:06d}"
            rel = f"clips/{clip_id}.flac"
            write_clip_score(out_dir / score_path_of(rel), clip)
            write_audio(out_dir / rel, audio, config.sample_rate)
            record = ClipRecord(id=clip_id, path=rel, caption=caption, seconds=config.clip_s,
                                sample_rate=config.sample_rate, split=split_of(entry.path), instruments=instruments,
                                programs=tuple(int(p) for p in programs), style=entry.collection, key=key,
                                tempo_bpm=round(bpm, 1), time_signature=time_signature, work=entry.path,
                                collection=entry.collection, transpose=transpose, license=entry.license, solo=solo)
            sink.write(record.to_json() + "\n")
            sink.flush()
            index += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    records = read_clips(out_dir)
    return {"clips": len(records), "hours": round(sum(r.seconds for r in records) / 3600, 2),
            "splits": {s: sum(r.split == s for r in records) for s in SPLITS},
            "skipped_works": failures, "sample_rate": config.sample_rate}


def score_path_of(audio_path: str) -> str:
    """The clip's score file beside its audio: ``clips/000123.flac -> clips/000123.mid``."""
    return str(Path(audio_path).with_suffix(".mid"))


def write_clip_score(path: Path, clip) -> None:
    """Write ``clip`` (a symusic score in seconds) as a MIDI file, atomically."""
    from cadenza.fileio import atomic_path

    with atomic_path(path) as tmp:
        clip.to("tick").dump_midi(str(tmp))


def clip_notes(corpus_dir: str | os.PathLike, record: ClipRecord) -> np.ndarray:
    """``[N, 3] float64`` rows of ``(onset_s, offset_s, pitch)`` of the score the clip was rendered from.

    Raises `CorruptInput` when the corpus predates clip scores (rebuild it with `cadenza train audio-data`).
    """
    from cadenza.fileio.midi import load_midi
    from cadenza.music.score_roll import score_notes

    path = Path(corpus_dir) / score_path_of(record.path)
    if not path.is_file():
        raise CorruptInput(f"{path} is missing: this clip corpus has no scores; rebuild it with "
                           "`cadenza train audio-data`")
    return score_notes(load_midi(path))


def load_clip(corpus_dir: str | os.PathLike, record: ClipRecord) -> np.ndarray:
    """``[1, frames] float32`` audio of one clip."""
    import soundfile

    data, sr = soundfile.read(Path(corpus_dir) / record.path, dtype="float32", always_2d=True)
    if sr != record.sample_rate:
        raise CorruptInput(f"{record.path}: sample rate {sr}, the index says {record.sample_rate}")
    return data.T[:1]
