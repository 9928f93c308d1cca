"""DDSP: real-time factor of timbre transfer and of synthesis on one CPU core; f0 tracker accuracy.

- ``x_realtime``: seconds of audio per second of wall time for transfer of a 10 s recording end to end
  (resampling, pitch tracking, loudness, decoder, synthesis), ``torch.set_num_threads(1)``; best of 3.
  ``x_realtime_cpu`` divides by the process's CPU time instead: on a shared, loaded machine that is what
  the work costs one core (the wall figure then also counts waiting for a core; see ``load_average``).
  The input is speech made with espeak-ng (a sung/spoken pitch contour with silences), or a synthetic
  sung tone where espeak-ng is missing. ``x_realtime_synthesis``: decoder + synthesizer alone.
- f0 accuracy: median and 90th-percentile error in cents of torchfcpe (ours) and torchcrepe ``full``
  (the reference) on FluidSynth renders of random melodies (6 s each; --quick: violin only, 3 s) for
  violin, flute, trumpet and clarinet, whose true pitch is known from the MIDI notes (sounding frames,
  50 ms after each onset left out).
- Per shipped instrument (checkpoints/ddsp-*): the transfer of the same input, its output's f0 against
  the input's (shifted by the octaves applied), its spectral centroid and harmonic profile; and (full
  run) ``timbre``: the same melody played by the model and by its FluidSynth original, harmonic
  profiles compared with all four originals (is the nearest one its own?).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

INSTRUMENTS = {"violin": 40, "flute": 73, "trumpet": 56, "clarinet": 71}
SPEECH = ("Laa, laa, laa. The quick brown fox jumps over the lazy dog. Ooooh, aaaah, we sing a song of summer "
          "by the sea, and the wind goes round and round.")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def voice(seconds: float) -> tuple[np.ndarray, int, str]:
    """``(samples [N], rate, what)``: espeak-ng speech trimmed/padded to ``seconds``, else a sung tone."""
    from cadenza.fileio.audio import read_audio

    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "voice.wav"
            subprocess.run(["espeak-ng", "-v", "en", "-s", "110", "-p", "60", "-w", str(path), SPEECH], check=True)
            audio, sr = read_audio(path, mono=True)
        n = int(seconds * sr)
        return np.pad(audio[0], (0, max(0, n - audio.shape[1])))[:n], sr, "espeak-ng speech"
    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220 * 2 ** ((5 * np.sin(2 * np.pi * 0.2 * t) + 0.3 * np.sin(2 * np.pi * 5 * t)) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    gate = (np.sin(2 * np.pi * 0.4 * t) > -0.5).astype(np.float64)
    return (sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2 * gate).astype(np.float32), sr, "synthetic sung tone"


def instrument_or_random(name: str = "ddsp-violin"):
    """A shipped instrument when present (its size is the shipped size), else a random default-size one."""
    from cadenza.checkpoints import discover, model_dirs
    from cadenza.generators.ddsp.export import load_instrument
    from cadenza.generators.ddsp.model import DDSPDecoder, Instrument

    specs = discover(model_dirs())
    if name in specs:
        return load_instrument(specs[name]), name
    return Instrument(DDSPDecoder().eval()), "random decoder (default size)"


def timed(fn, repeats: int = 3) -> tuple[float, float]:
    """``(best wall seconds, best CPU seconds of this process)`` over ``repeats`` calls. On a shared machine
    the CPU time is what the work costs one core; the wall time also counts waiting for the core."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def melody(program: int, seconds: float, seed: int):
    """FluidSynth render (16 kHz, dry, mono) of a random melody: ``(audio [N], f0 [F], mask [F], score)``."""
    import symusic

    from cadenza.generators.ddsp.data import PRESETS, f0_from_notes
    from cadenza.generators.ddsp.features import HOP, n_frames
    from cadenza.render.fluidsynth import FluidSynthRenderer, RenderOptions

    preset = next((p for p in PRESETS.values() if p.program == program), None)
    rng = np.random.default_rng(seed)
    rows, t = [], 0.1
    while t < seconds - 0.5:
        length = float(rng.choice([0.2, 0.3, 0.45, 0.6]))
        rows.append([t, t + length * 0.9, int(rng.integers(preset.low + 2, preset.high - 2)), int(rng.integers(60, 120))])
        t += length
    notes = np.array(rows, dtype=np.float64)
    score = symusic.Score(1000)
    track = symusic.Track("melody", program=program)
    for start, end, pitch, vel in notes:
        track.notes.append(symusic.Note(int(start * 2000), int((end - start) * 2000), int(pitch), int(vel)))
    score.tracks.append(track)
    options = RenderOptions(sample_rate=16000, reverb=False, chorus=False, stereo=False, normalize_lufs=-20.0, tail_s=0.3)
    with FluidSynthRenderer(options) as renderer:
        audio = renderer.render(score)[0][: int(seconds * 16000)]
    frames = n_frames(audio.shape[0])
    f0, sounding = f0_from_notes(notes, frames)
    times = np.arange(frames) * HOP / 16000
    since_onset = times - notes[np.clip(np.searchsorted(notes[:, 0], times, side="right") - 1, 0, None), 0]
    return audio, f0, sounding & (since_onset > 0.05), score


def f0_accuracy(seconds: float, names: list[str]) -> dict:
    from cadenza.compat import import_with_shims
    from cadenza.generators.ddsp.evaluate import cents_error
    from cadenza.generators.ddsp.features import HOP, default_tracker

    (torchcrepe,) = import_with_shims("torchcrepe")
    import torch

    tracker = default_tracker()
    errors = {"fcpe": [], "crepe_full": []}
    compute = {"fcpe": 0.0, "crepe_full": 0.0}
    total = 0.0
    for i, name in enumerate(names):
        audio, truth, mask, _ = melody(INSTRUMENTS[name], seconds, seed=i)
        total += audio.shape[0] / 16000
        start = time.perf_counter()
        f0, conf = tracker.track(audio)
        compute["fcpe"] += time.perf_counter() - start
        err_ours = cents_error(truth, f0, mask & (conf > 0.5))
        start = time.perf_counter()
        with torch.inference_mode():
            crepe_f0, periodicity = torchcrepe.predict(torch.from_numpy(audio)[None], 16000, HOP, 50.0, 2000.0,
                                                       model="full", return_periodicity=True, batch_size=512)
        compute["crepe_full"] += time.perf_counter() - start
        crepe_f0, periodicity = crepe_f0[0].numpy(), periodicity[0].numpy()
        err_ref = cents_error(truth, crepe_f0, mask & (periodicity > 0.5))
        errors["fcpe"].append(err_ours)
        errors["crepe_full"].append(err_ref)
        log(f"f0 {name}: fcpe median {np.median(err_ours):.1f} cents ({err_ours.size} frames), "
            f"crepe full {np.median(err_ref):.1f} cents ({err_ref.size} frames)")
    out = {}
    for key, parts in errors.items():
        e = np.concatenate(parts)
        out[f"f0_{key}_median_cents"] = round(float(np.median(e)), 2)
        out[f"f0_{key}_p90_cents"] = round(float(np.percentile(e, 90)), 2)
        out[f"f0_{key}_x_realtime"] = round(total / compute[key], 2)
    return out


def instrument_quality(audio: np.ndarray, sr: int, names: list[str]) -> dict:
    """Transfer ``audio`` to each shipped instrument: f0 following, centroid, harmonic profile."""
    from cadenza.checkpoints import discover, model_dirs
    from cadenza.generators.ddsp.evaluate import cents_error, harmonic_profile, spectral_centroid
    from cadenza.generators.ddsp.export import load_instrument
    from cadenza.generators.ddsp.features import default_tracker
    from cadenza.generators.ddsp.transfer import TransferOptions, transfer_audio
    from cadenza.fileio.audio import resample

    specs = discover(model_dirs())
    tracker = default_tracker()
    source = resample(audio[None], sr, 16000)[0] if sr != 16000 else audio
    f0_in, conf_in = tracker.track(source)
    out = {}
    for name in names:
        spec = specs.get(f"ddsp-{name}")
        if spec is None:
            continue
        instrument = load_instrument(spec)
        result, controls = transfer_audio(instrument, audio, sr, tracker, TransferOptions(), seed=0)
        f0_out, conf_out = tracker.track(result)
        mask = (conf_in > 0.5) & (conf_out > 0.5)
        err = cents_error(f0_in * 2.0 ** controls.octave_shift, f0_out, mask)
        out[name] = {"f0_follow_median_cents": round(float(np.median(err)), 1) if err.size else None,
                     "voiced_frames_followed": round(float(mask.sum() / max((conf_in > 0.5).sum(), 1)), 3),
                     "octave_shift": controls.octave_shift,
                     "spectral_centroid_hz": round(spectral_centroid(result, mask)),
                     "harmonics_db": harmonic_profile(result, f0_out, mask, 6)}
        log(f"{name}: {out[name]}")
    return out


def timbre_match(names: list[str], seconds: float = 6.0) -> dict:
    """Does each learned instrument sound like its own FluidSynth original? Each original plays a random
    melody in its range; the DDSP model of that instrument plays the same notes (``render --synth
    ddsp:NAME``). Each render is summarised by its harmonic profile (harmonics 1-8, dB relative to the
    strongest, median over sounding frames). Reports each model's distance (mean absolute dB difference)
    to every original's profile and which original is nearest."""
    from cadenza.checkpoints import discover, model_dirs
    from cadenza.generators.ddsp.evaluate import harmonic_profile, spectral_centroid
    from cadenza.generators.ddsp.export import load_instrument
    from cadenza.generators.ddsp.features import default_tracker
    from cadenza.generators.ddsp.midi import NoteRenderOptions, render_score

    specs = discover(model_dirs())
    shipped = [n for n in names if f"ddsp-{n}" in specs]
    if not shipped:
        return {}
    tracker = default_tracker()

    def profile(audio: np.ndarray) -> tuple[np.ndarray, float]:
        f0, conf = tracker.track(audio)
        mask = conf > 0.5
        return np.array(harmonic_profile(audio, f0, mask, 8)), spectral_centroid(audio, mask)

    originals, melodies = {}, {}
    for i, name in enumerate(INSTRUMENTS):  # each original plays a melody in its own range
        audio, _, _, melodies[name] = melody(INSTRUMENTS[name], seconds, seed=100 + i)
        originals[name] = profile(audio)
    out = {}
    for name in shipped:
        instrument = load_instrument(specs[f"ddsp-{name}"])
        rendered = render_score(instrument, melodies[name], NoteRenderOptions(normalize_lufs=-20.0))
        prof, centroid = profile(rendered.mix[0, : int(seconds * 16000)])
        distance = {ref: round(float(np.mean(np.abs(prof - p))), 1) for ref, (p, _) in originals.items()}
        out[name] = {"harmonics_db": [round(float(x), 1) for x in prof], "centroid_hz": round(centroid),
                     "original_harmonics_db": [round(float(x), 1) for x in originals[name][0]],
                     "original_centroid_hz": round(originals[name][1]),
                     "distance_db": distance, "nearest_original": min(distance, key=distance.get)}
        log(f"timbre {name}: {out[name]}")
    return out


def main(quick: bool) -> dict:
    import torch

    from cadenza.generators.ddsp.features import HOP, default_tracker
    from cadenza.generators.ddsp.synth import NoiseTable, synthesize
    from cadenza.generators.ddsp.transfer import TransferOptions, transfer_audio

    torch.set_num_threads(1)
    seconds = 10.0
    audio, sr, what = voice(seconds)
    instrument, which = instrument_or_random()
    start = time.perf_counter()
    tracker = default_tracker()
    load_s = time.perf_counter() - start
    log(f"input: {seconds:.0f} s of {what} at {sr} Hz; instrument: {which}; pitch tracker loaded in {load_s:.2f} s")
    transfer_audio(instrument, audio, sr, tracker, TransferOptions(), seed=0)  # warm-up
    transfer_s, transfer_cpu = timed(lambda: transfer_audio(instrument, audio, sr, tracker, TransferOptions(), seed=0))
    frames = int(seconds * 16000 / HOP) + 1
    f0 = torch.full((1, frames), 330.0)
    ld = torch.full((1, frames), -40.0)

    def synth_only() -> None:
        with torch.inference_mode():
            controls, _ = instrument.decoder(f0, ld)
            synthesize(controls, HOP, 16000, NoiseTable(0), instrument.decoder.reverb_ir)

    synth_s, synth_cpu = timed(synth_only)
    figures = {"threads": 1, "input": what, "instrument": which, "seconds": seconds,
               "x_realtime": round(seconds / transfer_s, 2), "x_realtime_cpu": round(seconds / transfer_cpu, 2),
               "x_realtime_synthesis": round(seconds / synth_s, 2),
               "x_realtime_synthesis_cpu": round(seconds / synth_cpu, 2),
               "transfer_s": round(transfer_s, 3), "transfer_cpu_s": round(transfer_cpu, 3),
               "tracker_load_s": round(load_s, 2), "load_average": round(os.getloadavg()[0], 2)}
    log(f"transfer {transfer_s:.3f} s wall, {transfer_cpu:.3f} s CPU ({figures['x_realtime']}x real time wall, "
        f"{figures['x_realtime_cpu']}x CPU); synthesis {synth_s:.3f} s ({figures['x_realtime_synthesis']}x wall, "
        f"{figures['x_realtime_synthesis_cpu']}x CPU); load average {figures['load_average']}")
    names = ["violin"] if quick else list(INSTRUMENTS)
    figures.update(f0_accuracy(3.0 if quick else 6.0, names))  # torchcrepe full runs at ~0.05x real time here
    figures["instruments"] = instrument_quality(audio, sr, names)
    if not quick:
        figures["timbre"] = timbre_match(list(INSTRUMENTS))
    return figures
