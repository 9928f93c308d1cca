"""Batch MIDI -> WAV: ``cadenza.render.render_batch`` against the ``fluidsynth`` program, same run.

The reference is what people script today: one ``fluidsynth -ni -g 0.5 -r 44100 -F out.wav SF2 in.mid``
process per file, one file at a time. Ours renders the same files with the same SoundFont, gain and
rate on 2 worker processes; both timings are wall clock and include every start-up cost (process
spawn, imports, SoundFont loads). ``ratio`` = our files/s / the program's files/s.

"ours" uses the program's settings (reverb and chorus on, no loudness normalisation) so both do the
same work; "ours_default" is our default options (chorus off, normalised to -14 LUFS).

Wall-clock ratios depend on what else runs on the machine: 2 workers need 2 idle cores. The CPU
seconds per file (ours: workers + parent; the program: its processes) are reported too, with the
1-minute load average, so a run on a busy machine can be read correctly.

Input: short pieces (5-20 s) from /work/shared/corpus/midi, round-robin over its collections; where
that folder is absent, MIDI files generated here with symusic.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CORPUS = Path(os.environ.get("CADENZA_CORPUS", "/work/shared/corpus")) / "midi"
MIN_S, MAX_S = 5.0, 20.0
WORKERS = 2


def main(quick: bool) -> dict:
    from cadenza.render.batch import find_midi_files, render_batch
    from cadenza.render.fluidsynth import RenderOptions, find_soundfont

    n = 40 if quick else 200
    cli = shutil.which("fluidsynth")
    if cli is None:
        raise SystemExit("the fluidsynth program is needed: sudo apt-get install fluidsynth fluid-soundfont-gm")
    soundfont = find_soundfont()
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-") as tmp:
        src = Path(tmp) / "in"
        source = _copy_corpus(src, n) if CORPUS.is_dir() else _generate(src, n)
        inputs = find_midi_files(src)
        print(f"{len(inputs)} MIDI files ({source}); SoundFont {soundfont}", flush=True)
        soundfont.read_bytes()  # warm the page cache so neither side pays a cold disk read

        load = [os.getloadavg()[0]]
        cli_equivalent = RenderOptions(sample_rate=44100, gain=0.5, reverb=True, chorus=True,
                                       normalize_lufs=None, soundfont=str(soundfont))
        cpu = _cpu_seconds()
        ours = render_batch(src, Path(tmp) / "ours", options=cli_equivalent, fmt="wav",
                            workers=WORKERS, progress=False)
        ours_cpu = _cpu_seconds() - cpu
        _check(ours, len(inputs))
        load.append(os.getloadavg()[0])
        print(f"ours ({WORKERS} workers, CLI settings): {ours.seconds:.2f} s, {ours.files_per_s:.2f} files/s, "
              f"{ours_cpu / len(inputs):.3f} CPU s/file, load {load[-1]:.1f}", flush=True)

        cli_out = Path(tmp) / "cli"
        cli_out.mkdir()
        cpu = _cpu_seconds()
        started = time.perf_counter()
        for i, path in enumerate(inputs):
            subprocess.run(
                [cli, "-ni", "-g", "0.5", "-r", "44100", "-F", str(cli_out / f"{i}.wav"), str(soundfont), str(path)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        cli_seconds = time.perf_counter() - started
        cli_cpu = _cpu_seconds() - cpu
        cli_fps = len(inputs) / cli_seconds
        load.append(os.getloadavg()[0])
        print(f"fluidsynth program (1 file at a time): {cli_seconds:.2f} s, {cli_fps:.2f} files/s, "
              f"{cli_cpu / len(inputs):.3f} CPU s/file, load {load[-1]:.1f}", flush=True)

        default = render_batch(src, Path(tmp) / "default", options=RenderOptions(soundfont=str(soundfont)),
                               fmt="wav", workers=WORKERS, progress=False)
        _check(default, len(inputs))
        load.append(os.getloadavg()[0])
        print(f"ours ({WORKERS} workers, default options): {default.seconds:.2f} s, "
              f"{default.files_per_s:.2f} files/s, load {load[-1]:.1f}", flush=True)

        audio_s = sum(_wav_seconds(p) for p in (Path(tmp) / "ours").rglob("*.wav"))
        cli_audio_s = sum(_wav_seconds(p) for p in cli_out.glob("*.wav"))

    return {
        "files": len(inputs),
        "source": source,
        "soundfont": str(soundfont),
        "workers": WORKERS,
        "cpus": os.cpu_count(),
        "cli_seconds": round(cli_seconds, 3),
        "cli_files_per_s": round(cli_fps, 3),
        "ours_seconds": round(ours.seconds, 3),
        "ours_files_per_s": round(ours.files_per_s, 3),
        "ratio": round(ours.files_per_s / cli_fps, 2),
        "ours_default_files_per_s": round(default.files_per_s, 3),
        "ratio_default": round(default.files_per_s / cli_fps, 2),
        "ours_cpu_s_per_file": round(ours_cpu / len(inputs), 4),
        "cli_cpu_s_per_file": round(cli_cpu / len(inputs), 4),
        "cpu_ratio": round(cli_cpu / ours_cpu, 2),
        "load_avg_1min": [round(x, 2) for x in load],
        "ours_audio_s": round(audio_s, 1),
        "cli_audio_s": round(cli_audio_s, 1),
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (workers, programs)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _check(summary, expected: int) -> None:
    if summary.ok != expected:
        raise SystemExit(f"render_batch rendered {summary.ok} of {expected} files; see {summary.report_path}")


def _wav_seconds(path: Path) -> float:
    import soundfile

    info = soundfile.info(path)
    return info.frames / info.samplerate


def _copy_corpus(dst: Path, n: int) -> str:
    """Copy ``n`` pieces lasting MIN_S-MAX_S seconds, taken round-robin over the corpus collections."""
    manifest = CORPUS.parent / "MANIFEST.tsv"
    by_collection: dict[str, list[str]] = {}
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines()[1:]:
            path, collection, *_, seconds, _license = line.split("\t")
            if MIN_S <= float(seconds) <= MAX_S:
                by_collection.setdefault(collection, []).append(path)
    else:  # no manifest: take small files, which are short pieces
        for p in sorted(CORPUS.rglob("*.mid")):
            if p.stat().st_size < 4000:
                by_collection.setdefault(p.parent.name, []).append(str(p.relative_to(CORPUS)))
    queues = [sorted(paths) for _, paths in sorted(by_collection.items())]
    picked: list[str] = []
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                # spread picks over each collection instead of taking its first files
                picked.append(q.pop((len(q) * 7919) % len(q)))
    for rel in picked:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / rel, target)
    return str(CORPUS)


def _generate(dst: Path, n: int) -> str:
    """Write ``n`` pieces of 8-16 s (a melody, every third one with a bass line) with symusic."""
    import numpy as np
    from symusic import Note, Score, Tempo, Track

    rng = np.random.default_rng(0)
    dst.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        score = Score(480)
        score.tempos.append(Tempo(0, qpm=float(rng.integers(80, 160))))
        beats = int(rng.integers(16, 32))
        melody = Track(program=int(rng.integers(0, 80)))
        for b in range(beats * 2):
            melody.notes.append(Note(b * 240, 220, int(rng.integers(60, 84)), int(rng.integers(60, 110))))
        score.tracks.append(melody)
        if i % 3 == 0:
            bass = Track(program=32)
            for b in range(beats):
                bass.notes.append(Note(b * 480, 460, int(rng.integers(36, 48)), 90))
            score.tracks.append(bass)
        score.dump_midi(str(dst / f"generated_{i:04d}.mid"))
    return "generated with symusic"
