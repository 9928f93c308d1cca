"""Transcription: note F1 (mir_eval, onsets within 50 ms; with and without offsets) and speed, on audio whose
notes are known: FluidSynth and DDSP renders of held-out (test split) corpus pieces.

- Solo lines: monophonic test-split tunes (O'Neill's, Aird's, Ryan's; not the non-commercial Essen
  collection) played on flute, violin, clarinet and trumpet (FluidR3_GM, dry, mono, 22.05 kHz), the first
  ``CLIP_S`` seconds. Each clip is transcribed in both modes: ``f1_mono`` is the monophonic mode (f0
  tracker; the hum-to-tune path), ``f1_mono_poly_model`` the default polyphonic mode (Basic Pitch) on the
  same lines.
- Four-voice chorales: the Bach chorales of the test split on FluidSynth's piano: ``f1_poly``.
- DDSP renders: solo lines played by the shipped DDSP instruments (checkpoints/ddsp-*, via
  ``Studio.render(..., synth="ddsp:NAME")``): ``f1_ddsp`` (monophonic mode) and ``f1_ddsp_poly_model``.
- Speed: ``x_realtime``: seconds of audio per second of wall time of the polyphonic transcriber on one
  thread (models loaded first; reading, resampling, the model, decoding, tempo, key all counted);
  ``x_realtime_mono`` the same for the monophonic mode; ``*_cpu`` divide by this process's CPU time
  instead (on a loaded machine: what the work costs one core).
F1 figures are means over clips; ``*_offsets`` also require offsets within 20 % of the note's length
(at least 50 ms).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

CORPUS = Path(os.environ.get("CADENZA_CORPUS", "/work/shared/corpus"))
SOLO_COLLECTIONS = ("oneills1850", "airdsAirs", "ryansMammoth")
INSTRUMENTS = {"flute": 73, "violin": 40, "clarinet": 71, "trumpet": 56}
SR = 22050


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _test_pieces() -> tuple[list[Path], list[Path]]:
    """(monophonic solo tunes, Bach chorales) of the test split, sorted by path."""
    from cadenza.analysis import score_notes
    from cadenza.data.splits import split_of
    from cadenza.fileio.midi import load_midi

    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if split_of(r["path"]) == "test"]
    solo, chorales = [], []
    for row in sorted(rows, key=lambda r: r["path"]):
        path = CORPUS / "midi" / row["path"]
        if row["collection"] == "bach":
            chorales.append(path)
        elif row["collection"] in SOLO_COLLECTIONS:
            score = load_midi(path)
            notes = score_notes(score)
            if len(score.tracks) == 1 and np.all(notes[1:, 0] >= notes[:-1, 1] - 1e-6):
                solo.append(path)
    return solo, chorales


def _crop(notes: np.ndarray, seconds: float) -> np.ndarray:
    kept = notes[notes[:, 0] < seconds - 0.1].copy()
    kept[:, 1] = np.minimum(kept[:, 1], seconds)
    return kept


def _score_for(path: Path, program: int | None):
    from cadenza.fileio.midi import load_midi

    score = load_midi(path)
    if program is not None:
        for track in score.tracks:
            track.program = program
            track.is_drum = False
    return score


def _fluidsynth(score, seconds: float) -> np.ndarray:
    from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions

    options = RenderOptions(sample_rate=SR, reverb=False, chorus=False, stereo=False, normalize_lufs=-20.0, tail_s=0.3)
    with FluidSynthRenderer(options) as renderer:
        return renderer.render(score)[0][: int(seconds * SR)]


class Meter:
    """Transcribes clips and keeps F1 per group and the time spent."""

    def __init__(self) -> None:
        from cadenza.analysis import Transcriber

        self.ear = Transcriber(threads=1)
        self.ear.model_info("poly")
        self.ear.model_info("mono")
        self.f1: dict[str, list[float]] = {}
        self.audio_s = {"poly": 0.0, "mono": 0.0}
        self.wall_s = {"poly": 0.0, "mono": 0.0}
        self.cpu_s = {"poly": 0.0, "mono": 0.0}

    def measure(self, group: str, audio: np.ndarray, rate: int, reference: np.ndarray, mode: str) -> dict:
        from cadenza.analysis import TranscribeOptions, note_f1

        seconds = audio.shape[0] / rate
        start, start_cpu = time.perf_counter(), time.process_time()
        result = self.ear.transcribe(audio, rate, TranscribeOptions(mode=mode))
        self.wall_s[mode] += time.perf_counter() - start
        self.cpu_s[mode] += time.process_time() - start_cpu
        self.audio_s[mode] += seconds
        estimate = _crop(result.notes, seconds)
        onsets = note_f1(reference, estimate)
        offsets = note_f1(reference, estimate, offsets=True)
        self.f1.setdefault(group, []).append(onsets["f1"])
        self.f1.setdefault(f"{group}_offsets", []).append(offsets["f1"])
        return {"f1": round(onsets["f1"], 3), "f1_offsets": round(offsets["f1"], 3), "notes": len(estimate),
                "reference": int(reference.shape[0])}

    def mean(self, group: str) -> float | None:
        values = self.f1.get(group)
        return round(float(np.mean(values)), 4) if values else None


def main(quick: bool) -> dict:
    import torch

    from cadenza.analysis import score_notes

    torch.set_num_threads(1)
    clip_s = 12.0 if quick else 20.0
    solo, chorales = _test_pieces()
    solo = solo[:: max(1, len(solo) // (3 if quick else 10))][: 3 if quick else 10]
    chorales = chorales[: 4 if quick else len(chorales)]
    log(f"{len(solo)} solo tunes x {len(INSTRUMENTS)} instruments, {len(chorales)} chorales, clips of {clip_s:.0f} s; "
        f"load average {os.getloadavg()[0]:.2f}")
    meter = Meter()
    for path in solo:
        for name, program in INSTRUMENTS.items():
            score = _score_for(path, program)
            reference = _crop(score_notes(score), clip_s)
            audio = _fluidsynth(score, clip_s)
            mono = meter.measure("mono", audio, SR, reference, "mono")
            poly = meter.measure("mono_poly_model", audio, SR, reference, "poly")
            meter.f1.setdefault(f"mono_{name}", []).append(mono["f1"])
            log(f"solo {path.name} {name}: mono {mono}, poly model {poly}")
    for path in chorales:
        score = _score_for(path, 0)
        reference = _crop(score_notes(score), clip_s * 1.5)
        audio = _fluidsynth(score, clip_s * 1.5)
        log(f"chorale {path.name}: {meter.measure('poly', audio, SR, reference, 'poly')}")
    ddsp = _ddsp_renders(meter, solo[:2] if quick else solo[:5], min(clip_s, 10.0))
    figures = {
        "f1_mono": meter.mean("mono"), "f1_mono_offsets": meter.mean("mono_offsets"),
        "f1_mono_poly_model": meter.mean("mono_poly_model"),
        "f1_mono_poly_model_offsets": meter.mean("mono_poly_model_offsets"),
        "f1_mono_by_instrument": {name: meter.mean(f"mono_{name}") for name in INSTRUMENTS},
        "f1_poly": meter.mean("poly"), "f1_poly_offsets": meter.mean("poly_offsets"),
        "f1_ddsp": meter.mean("ddsp"), "f1_ddsp_offsets": meter.mean("ddsp_offsets"),
        "f1_ddsp_poly_model": meter.mean("ddsp_poly_model"), "ddsp_instruments": ddsp,
        "x_realtime": round(meter.audio_s["poly"] / meter.wall_s["poly"], 2),
        "x_realtime_cpu": round(meter.audio_s["poly"] / meter.cpu_s["poly"], 2),
        "x_realtime_mono": round(meter.audio_s["mono"] / meter.wall_s["mono"], 2),
        "x_realtime_mono_cpu": round(meter.audio_s["mono"] / meter.cpu_s["mono"], 2),
        "audio_s": {k: round(v, 1) for k, v in meter.audio_s.items()},
        "solo_clips": len(solo) * len(INSTRUMENTS), "chorales": len(chorales), "clip_s": clip_s, "threads": 1,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    return figures


def _ddsp_renders(meter: Meter, pieces: list[Path], clip_s: float) -> list[str]:
    """Solo lines played by each shipped DDSP instrument, transcribed in both modes."""
    from cadenza import MidiOutput, Studio
    from cadenza.analysis import score_notes
    from cadenza.outputs import Provenance

    studio = Studio(threads=1)
    names = [m.name for m in studio.models() if m.family == "ddsp"]
    for name in names:
        for path in pieces:
            score = _score_for(path, None)
            reference = _crop(score_notes(score), clip_s)
            audio = studio.render(MidiOutput(score, Provenance(str(path), "file", None, {}, {}, None)), synth=f"ddsp:{name}")
            samples = audio.samples[0, : int(clip_s * audio.sample_rate)]
            mono = meter.measure("ddsp", samples, audio.sample_rate, reference, "mono")
            poly = meter.measure("ddsp_poly_model", samples, audio.sample_rate, reference, "poly")
            log(f"ddsp {name} {path.name}: mono {mono}, poly model {poly}")
    return names
