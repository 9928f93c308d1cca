"""Reliability: hostile inputs give a Cadenza error or a whole output; memory does not grow with length.

1. **Fuzz** (``fuzz_cases``): mutated MIDI files (byte flips and sets, truncations, 0xFF runs = huge
   delta-times, header edits: division 0 / SMPTE, track counts, chunk lengths, tempos) and mutated audio
   files (WAV/FLAC header fields, NaN samples, one sample, empty), made from small valid seeds with a
   seeded random generator (the same cases every run). Every MIDI file goes through FluidSynth rendering
   (pieces over 5 s through the streamed path) and through the prompt path of ``remi-folk-small``
   (continued by 32 tokens); every audio file through reading, the prompt check a diffusion prompt gets, and
   timbre transfer onto ``ddsp-violin``. Inputs are limited to 60 s (``max_duration_s``). The cases run in
   one worker process, each under a ``CASE_TIMEOUT_S`` timeout (a hang is killed and counted).
   ``crashes``: cases that ended in anything but a ``CadenzaError`` or a whole output (another exception,
   a timeout, a dead worker), by kind in ``crash_kinds``. ``nonfinite_written``: outputs holding NaN/Inf.
2. **Memory** (``max_rss_mb``): the peak resident memory of ``cadenza render`` (a fresh process, measured
   with ``wait4``) on the 6.5-hour corpus file ``airdsAirs/book1.abc.101.mid`` (``--max-duration 7h``)
   and on a 10-hour silent MIDI file, both to FLAC at the default settings (44.1 kHz stereo, reverb,
   -14 LUFS); each output is then read back in blocks and checked for NaN/Inf (``nonfinite_written``).
   ``--quick``: 400 fuzz cases and 20-minute pieces instead.
3. **Web** (``web``): when ``benchmarks/web_load.py`` exists, its ``measure(quick)`` figures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.paths import CHECKPOINTS, REPO

CORPUS = Path(os.environ.get("CADENZA_CORPUS", REPO.parent / "shared" / "corpus")) / "midi"
LONG_MIDI = CORPUS / "airdsAirs" / "book1.abc.101.mid"
FUZZ_CASES, QUICK_CASES = 5000, 400
CASE_TIMEOUT_S = 30.0
LIMIT_S = 60.0  # the fuzz worker's --max-duration


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(quick: bool = False) -> dict:
    started = time.perf_counter()
    load = os.getloadavg()[0]
    fuzz = run_fuzz(QUICK_CASES if quick else FUZZ_CASES)
    log(f"fuzz: {fuzz['fuzz_cases']} cases, {fuzz['crashes']} crashes, {fuzz['outcomes']}")
    long = measure_long_renders(quick)
    result = {
        "fuzz_cases": fuzz["fuzz_cases"],
        "crashes": fuzz["crashes"],
        "nonfinite_written": fuzz["nonfinite_written"] + long["nonfinite_written"],
        "max_rss_mb": max(r["max_rss_mb"] for r in long["renders"].values()),
        "crash_kinds": fuzz["crash_kinds"],
        "outcomes": fuzz["outcomes"],
        "fuzz_s": fuzz["seconds"],
        "renders": long["renders"],
        "load_average": round(load, 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    web = _web_load(quick)
    if web is not None:
        result["web"] = web
    return result


# ---- fuzz --------------------------------------------------------------------------------------------

def run_fuzz(cases: int, seed: int = 19) -> dict:
    """``cases`` mutated files (half MIDI, half audio) through the worker; see the module docstring."""
    rng = np.random.default_rng(seed)
    midi_seeds, audio_seeds = midi_seed_files(), audio_seed_files()
    outcomes: Counter = Counter()
    crash_kinds: Counter = Counter()
    nonfinite = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cadenza-fuzz-") as work, _Worker(Path(work)) as worker:
        for index in range(cases):
            kind = "midi" if index % 2 == 0 else "audio"
            seeds = midi_seeds if kind == "midi" else audio_seeds
            data = mutate(rng, seeds[int(rng.integers(len(seeds)))], kind)
            suffix = ".mid" if kind == "midi" else (".flac" if data[:4] == b"fLaC" else ".wav")
            path = Path(work) / f"case{suffix}"
            path.write_bytes(data)
            result = worker.run(kind, path)
            if result["crash"]:
                crash_kinds[result["crash"]] += 1
                outcomes["crash"] += 1
                log(f"crash in case {index} ({kind}): {result['crash']}")
                (Path(work).parent / f"cadenza-fuzz-crash-{index}{suffix}").write_bytes(data)  # kept to replay
            else:
                for outcome in result["outcomes"]:
                    outcomes[outcome] += 1
            nonfinite += result.get("nonfinite", 0)
            if (index + 1) % 500 == 0:
                log(f"fuzz: {index + 1}/{cases} cases, {sum(crash_kinds.values())} crashes, "
                    f"{time.perf_counter() - started:.0f} s")
    return {"fuzz_cases": cases, "crashes": sum(crash_kinds.values()), "crash_kinds": dict(crash_kinds),
            "outcomes": dict(sorted(outcomes.items())), "nonfinite_written": nonfinite,
            "seconds": round(time.perf_counter() - started, 1)}


def midi_seed_files() -> list[bytes]:
    """Small valid MIDI files: a few short corpus tunes (when the corpus is there) and made ones with
    tempo changes, control changes, pitch bends, drums and several tracks."""
    import symusic

    seeds = []
    if CORPUS.is_dir():
        small = sorted((p for p in (CORPUS / "airdsAirs").glob("*.mid") if p.stat().st_size < 3000), key=str)[:6]
        seeds += [p.read_bytes() for p in small]
    for tpq, qpm, tracks in ((480, None, 1), (96, 90, 2), (1, 200, 3), (960, 40, 2)):
        score = symusic.Score(tpq)
        if qpm is not None:
            score.tempos.append(symusic.Tempo(0, qpm=qpm))
        for t in range(tracks):
            track = symusic.Track(program=(t * 25) % 128, is_drum=t == 2)
            for i in range(8):
                track.notes.append(symusic.Note(i * tpq // 2, max(1, tpq // 2), 55 + (i * 5 + t * 7) % 30, 70 + i * 5))
            track.controls.append(symusic.ControlChange(0, 64, 127 if t == 0 else 0))
            track.pitch_bends.append(symusic.PitchBend(tpq, 1000 * (t + 1)))
            score.tracks.append(track)
        seeds.append(bytes(score.dumps_midi()))
    return seeds


def audio_seed_files() -> list[bytes]:
    """Small audio files: PCM16 and float WAV (mono, stereo), FLAC, 24-bit, one sample, none, NaN samples."""
    import soundfile as sf

    t = np.arange(1600) / 16000
    tone = (0.4 * np.sin(2 * np.pi * 330 * t) * np.minimum(1, t * 20)).astype(np.float32)
    nan = np.stack([tone, tone], 1)
    nan[200:210] = np.nan
    out = []
    for data, fmt, subtype, sr in ((tone[:, None], "WAV", "PCM_16", 16000), (np.stack([tone, -tone], 1), "WAV", "FLOAT", 16000),
                                   (tone[:, None], "FLAC", "PCM_16", 16000), (tone[:, None], "WAV", "PCM_24", 44100),
                                   (tone[:1, None], "WAV", "PCM_16", 8000), (np.zeros((0, 1), np.float32), "WAV", "PCM_16", 8000),
                                   (nan, "WAV", "FLOAT", 22050)):
        buf = io.BytesIO()
        sf.write(buf, data, sr, format=fmt, subtype=subtype)
        out.append(buf.getvalue())
    return out


def mutate(rng: np.random.Generator, seed: bytes, kind: str) -> bytes:
    """``seed`` with 1-4 mutations (see the module docstring)."""
    data = bytearray(seed)
    for _ in range(int(rng.integers(1, 5))):
        if not data:
            break
        op = rng.choice(["flip", "flip", "flip", "set", "set", "truncate", "insert", "header", "header"])
        at = int(rng.integers(min(4, len(data) - 1), len(data)))
        if op == "flip":
            data[at] ^= 1 << int(rng.integers(8))
        elif op == "set":
            data[at] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF, int(rng.integers(256))]))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = b"\xff" * int(rng.integers(1, 7))
        elif kind == "midi":
            _midi_header(rng, data)
        else:
            _audio_header(rng, data)
    return bytes(data)


def _midi_header(rng: np.random.Generator, data: bytearray) -> None:
    midi_header_edit(data, lambda options: options[int(rng.integers(len(options)))])


def midi_header_edit(data: bytearray, pick) -> None:
    """Set one MIDI header field of ``data`` (in place) to an edge value: the division, the track count,
    the format, the first tempo or a track chunk's length. ``pick(options) -> one of them`` draws (a seeded
    generator here; hypothesis in the fuzz tests)."""
    if len(data) < 14:
        return
    field = pick(["division", "tracks", "format", "tempo", "length"])
    if field == "division":
        data[12:14] = int(pick([0, 1, 0x7FFF, 0x8000, 0xE250, 0xFFFF])).to_bytes(2, "big")
    elif field == "tracks":
        data[10:12] = int(pick([0, 2, 0xFFFF])).to_bytes(2, "big")
    elif field == "format":
        data[8:10] = int(pick([0, 1, 2, 7])).to_bytes(2, "big")
    elif field == "tempo":
        at = data.find(b"\xff\x51\x03")
        if at >= 0:
            data[at + 3:at + 6] = pick([b"\x00\x00\x00", b"\x00\x00\x01", b"\xff\xff\xff"])
    else:
        at = data.find(b"MTrk")
        if at >= 0:
            data[at + 4:at + 8] = int(pick([0, 1, 0x7FFFFFFF, 0xFFFFFFFF])).to_bytes(4, "big")


def _audio_header(rng: np.random.Generator, data: bytearray) -> None:
    if data[:4] == b"RIFF" and len(data) >= 44:
        at, size = [(22, 2), (24, 4), (34, 2), (40, 4), (4, 4), (20, 2)][int(rng.integers(6))]
        data[at:at + size] = int(rng.choice([0, 1, 3, 2 ** (8 * size) - 1])).to_bytes(size, "little")
    elif data[:4] == b"fLaC" and len(data) >= 30:
        data[18:22] = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"][int(rng.integers(2))]
    if len(data) > 60 and rng.random() < 0.3:  # a NaN or an infinity in float data (or noise in PCM)
        at = int(rng.integers(44, len(data) - 4))
        data[at:at + 4] = [b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f"][int(rng.integers(2))]


class _Worker:
    """One worker process that runs cases; killed and started again after a timeout or a death."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._context = multiprocessing.get_context("spawn")
        self._process = None
        self._conn = None

    def __enter__(self) -> _Worker:
        self._start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child, str(self.work)), daemon=True)
        self._process.start()
        self._conn = parent
        if not parent.poll(300) or parent.recv() != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def _stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._conn.send(None)
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = None

    def run(self, kind: str, path: Path) -> dict:
        try:
            self._conn.send((kind, str(path)))
            if self._conn.poll(CASE_TIMEOUT_S):
                return self._conn.recv()
            crash = f"Timeout: over {CASE_TIMEOUT_S:g} s"
        except (EOFError, BrokenPipeError, ConnectionResetError):
            crash = "WorkerDied"
        self._process.kill()
        self._process.join()
        self._process = None
        self._start()
        return {"crash": crash, "outcomes": []}


def _serve(conn, work: str) -> None:
    """The worker: load what every case needs once, then answer ``(kind, path)`` messages."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # The libraries' own chatter (FluidSynth's missing presets, the f0 tracker's notices) goes to fd 1: keep the
    # benchmark's stdout for its result line.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- for the life of the worker
    import torch

    torch.set_num_threads(1)
    from cadenza import Studio
    from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions

    studio = Studio(model_dirs=[CHECKPOINTS], max_duration_s=LIMIT_S, threads=1)
    renderer = FluidSynthRenderer(RenderOptions(sample_rate=16000, reverb=False, tail_s=0.5, max_duration_s=LIMIT_S))
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            renderer.close()
            return
        kind, path = message
        conn.send(_case(studio, renderer, kind, Path(path), Path(work)))


def _case(studio, renderer, kind: str, path: Path, work: Path) -> dict:
    """Every path one file goes through: ``{"crash": None or what, "outcomes": [...], "nonfinite": n}``."""
    from cadenza import CadenzaError, Conditioning, Sampling

    def render() -> Path:
        renderer.render_to_file(path, work / "out.wav", block_s=2.0, whole_max_s=5.0)
        return work / "out.wav"

    def prompt_check() -> None:
        Conditioning(prompt=str(path))  # what a diffusion prompt goes through before the model runs

    def transfer() -> Path:
        return studio.transfer(path, "ddsp-violin", sampling=Sampling(seed=0)).save(work / "t.wav")

    steps = {"render": render, "prompt": lambda: _continue(studio, path, work)} if kind == "midi" else {
        "prompt_check": prompt_check, "transfer": transfer}
    outcomes, nonfinite = [], 0
    for name, step in steps.items():
        try:
            written = step()
        except CadenzaError as exc:
            outcomes.append(f"{name}:refused:{type(exc).__name__}")
            continue
        except BaseException as exc:  # noqa: BLE001 -- this is what the benchmark counts
            return {"crash": f"{name}: {type(exc).__name__}: {str(exc)[:200]}", "outcomes": outcomes,
                    "nonfinite": nonfinite}
        outcomes.append(f"{name}:ok")
        if isinstance(written, Path) and written.suffix in (".wav", ".flac"):
            nonfinite += _nonfinite(written)
    return {"crash": None, "outcomes": outcomes, "nonfinite": nonfinite}


def _continue(studio, path: Path, work: Path) -> Path:
    from cadenza import Conditioning, Sampling

    outputs = studio.generate("remi-folk-small", Conditioning(prompt=str(path), bars=1), Sampling(seed=0, max_tokens=32))
    return outputs[0].save(work / "continued.mid")


def _nonfinite(path: Path, block_s: float = 10.0) -> int:
    """How many samples of the audio file ``path`` are NaN or infinite (read in blocks)."""
    import soundfile as sf

    info = sf.info(path)
    bad = 0
    for block in sf.blocks(path, blocksize=max(1, int(block_s * info.samplerate)), dtype="float32"):
        bad += int(block.size - np.count_nonzero(np.isfinite(block)))
    return bad


# ---- memory of long renders ------------------------------------------------------------------------

def measure_long_renders(quick: bool) -> dict:
    """Peak RSS of ``cadenza render`` on the long corpus file and a silent MIDI file (see the docstring)."""
    import symusic

    renders, nonfinite = {}, 0
    with tempfile.TemporaryDirectory(prefix="cadenza-long-") as work:
        silent_h = 1 / 3 if quick else 10.0
        silent = Path(work) / "silent.mid"
        score = symusic.Score(480)
        track = symusic.Track(program=0)
        track.controls.append(symusic.ControlChange(0, 7, 0))  # channel volume 0: nothing is heard
        track.notes.append(symusic.Note(0, 480, 60, 100))
        track.notes.append(symusic.Note(int(silent_h * 3600 * 960) - 1920, 480, 60, 100))  # 960 ticks/s at 120 BPM
        score.tracks.append(track)
        score.dump_midi(str(silent))
        jobs = {f"silent_{silent_h:g}h": (silent, f"{silent_h + 1:g}h" if not quick else "30m")}
        if not quick and LONG_MIDI.is_file():
            jobs = {"airds_book1_101_6.5h": (LONG_MIDI, "7h"), **jobs}
        elif quick:
            jobs = {"silent_20min": (silent, "30m")}
        for name, (source, limit) in jobs.items():
            out = Path(work) / f"{name}.flac"
            peak_mb, seconds, code = _render_rss(source, out, limit)
            bad = _nonfinite(out) if code == 0 else 0
            nonfinite += bad
            renders[name] = {"max_rss_mb": round(peak_mb, 1), "seconds": round(seconds, 1), "exit": code,
                             "nonfinite": bad, "hours": round(_audio_hours(out), 3) if code == 0 else None}
            log(f"{name}: {renders[name]}")
            out.unlink(missing_ok=True)
    return {"renders": renders, "nonfinite_written": nonfinite}


def _render_rss(source: Path, out: Path, limit: str) -> tuple[float, float, int]:
    """``(peak RSS in MB, wall seconds, exit status)`` of ``cadenza render SOURCE -o OUT --max-duration LIMIT``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "cadenza.app.cli", "render", str(source), "-o", str(out),
                                "--max-duration", limit], cwd=REPO, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - started, process.returncode


def _audio_hours(path: Path) -> float:
    import soundfile as sf

    info = sf.info(path)
    return info.frames / info.samplerate / 3600.0


def _web_load(quick: bool) -> dict | None:
    """``benchmarks.web_load.measure(quick)`` when that module is there (the web app's load run)."""
    if importlib.util.find_spec("benchmarks.web_load") is None:
        return None
    from benchmarks import web_load

    return web_load.measure(quick)
