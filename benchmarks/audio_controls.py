"""Do the audio models play what the text asks for: key, tempo, the tune, the instrument?

Prompts name a form, a solo instrument, a key and a tempo ("a jig played by a solo flute in E minor at
116 BPM"). For each prompt the composer (`remi-folk-small`) writes the score with exactly those controls
(`cadenza.compose`: as `cadenza generate MODEL --text ...` does by default, in the instrument's register),
and then:

- ``reference``: that score rendered by FluidSynth with the instrument's General MIDI sound, as the
  training clips were (`cadenza.data.sketch`: it is also the sketch the models start from);
- every installed built-in audio model performs it (``--melody``: compose, then perform) with its
  default strength, i.e. from the sketch (`sketch_melody`: the same rendering with each note's start
  accented, ``SKETCH_ACCENT_DB``; the reference is the plain one);
- the same models performing the score alone (``--strength 1``, their own performance), reported as
  ``MODEL --strength 1``, and from the text alone (``--no-compose``), as ``MODEL --no-compose``.

Per model, over the prompts:

- ``key``: the key of the notes heard in the audio (Basic Pitch, then Krumhansl-Schmuckler on their
  duration-weighted pitch classes, `cadenza.analysis.key_from_notes`) is the one asked for;
  ``key_chroma``: the same from the audio's CQT chroma (`estimate_key_from_audio`), whose overtones pull
  towards the dominant (the fifth above: the third partial), so it also misses on real renderings;
- ``tempo`` / ``tempo_octave``: librosa's beat tracker (`estimate_tempo`) within 8 % of the asked BPM /
  of half, the same or double it;
- ``melody_f1``: note F1 (mir_eval, onsets within 50 ms, pitch within 50 cents) of the notes Basic Pitch
  hears in the audio against the score (the reference's F1 is the ear's own ceiling on these sounds);
- ``notes_per_s``: notes heard per second; ``instrument``: the offline instrument probe
  (`cadenza.data.instrument_probe`, fitted on the corpus' solo training clips) names the asked instrument.

``--quick``: 6 prompts, probe fitted on 300 clips. ``--seed N`` (default 7): other pairings of form, instrument
and key, other tempos and other composed tunes, to check the figures on prompts the default run never saw.
``--prompts N`` (default 20): more prompts for figures a single output moves less (one in 20 is 0.05).
Needs ``data/audio`` (`cadenza train audio-data`).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import paths

DATA = paths.DATA / "audio"
MODELS = ("musicgen-folk-small", "diffusion-folk-small")
FORMS = {"reel": (104, 124), "jig": (108, 132), "waltz": (96, 144), "march": (88, 116), "hornpipe": (88, 104),
         "air": (66, 84)}
KEYS = ("C major", "D major", "G major", "A major", "F major", "Bb major", "E minor", "A minor", "D minor",
        "G minor", "B minor", "F# minor")
DURATION_S = 8.0
SEED = 7


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_prompts(n: int, instruments: tuple[str, ...], seed: int = SEED) -> list[tuple[str, str, str, float]]:
    """``n`` seeded ``(text, instrument, key, bpm)``: forms, keys and instruments cycled so each recurs. Another
    ``seed`` shuffles the three lists first (other pairings: an independent set of the same kind)."""
    rng = random.Random(seed)
    forms, instruments, keys = list(FORMS), list(instruments), list(KEYS)
    if seed != SEED:  # the default seed keeps the prompts every earlier run used
        for items in (forms, instruments, keys):
            rng.shuffle(items)
    made = []
    for i in range(n):
        form = forms[i % len(forms)]
        instrument = instruments[(i * 5) % len(instruments)]
        key = keys[(i * 7) % len(keys)]
        bpm = float(rng.randint(*FORMS[form]))
        made.append((f"a {form} played by a solo {instrument} in {key} at {bpm:.0f} BPM", instrument, key, bpm))
    return made


def reference_audio(score, instrument: str, sample_rate: int, seconds: float) -> np.ndarray:
    """``[T]``: the score on the instrument's General MIDI sound, as the training clips were rendered."""
    from cadenza.data.sketch import render_sketch, sketch_programs

    name, programs = sketch_programs(f"a solo {instrument}")
    assert name == instrument, (name, instrument)
    return render_sketch(score, programs, sample_rate, seconds)


def judge(audio: np.ndarray, sample_rate: int, key: str, bpm: float, score_notes: np.ndarray | None, ear, probe,
          instrument: str) -> dict:
    """One output's figures (see the module docstring)."""
    from cadenza.analysis import TranscribeOptions, estimate_key_from_audio, estimate_tempo, key_from_notes, note_f1
    from cadenza.data.instrument_probe import clip_features

    chroma_key = estimate_key_from_audio(audio, sample_rate)
    tempo = estimate_tempo(audio, sample_rate)
    notes = ear.transcribe(audio.astype(np.float32), sample_rate, TranscribeOptions(mode="poly")).notes
    heard_key = key_from_notes(notes)
    said = probe.predict(clip_features(audio, sample_rate)[None])[0]
    close = lambda value: bpm > 0 and abs(value - bpm) / bpm <= 0.08  # noqa: E731
    return {"key": heard_key is not None and heard_key.name == key, "heard_key": None if heard_key is None else heard_key.name,
            "key_chroma": chroma_key is not None and chroma_key.name == key,
            "tempo": close(tempo), "tempo_octave": any(close(tempo * f) for f in (0.5, 1.0, 2.0)),
            "heard_bpm": round(float(tempo), 1),
            "melody_f1": None if score_notes is None else note_f1(score_notes, notes)["f1"],
            "notes_per_s": len(notes) / (audio.shape[-1] / sample_rate), "instrument": said == instrument,
            "heard_instrument": said}


def summarise(rows: list[dict]) -> dict:
    out = {name: round(float(np.mean([r[name] for r in rows])), 3)
           for name in ("key", "key_chroma", "tempo", "tempo_octave", "notes_per_s", "instrument")}
    f1 = [r["melody_f1"] for r in rows if r["melody_f1"] is not None]
    out["melody_f1"] = round(float(np.mean(f1)), 3) if f1 else None
    out["outputs"] = len(rows)
    return out


def main(quick: bool, seed: int = SEED, prompts: int | None = None) -> dict:
    import torch

    from cadenza import Conditioning, Sampling, Studio
    from cadenza.analysis import Transcriber, score_notes
    from cadenza.compose import DEFAULT_COMPOSER, in_register, plan_compose
    from cadenza.music.score_roll import SCORE_TAIL_S
    from cadenza.conditioning import Capability
    from cadenza.data.instrument_probe import InstrumentProbe

    torch.set_num_threads(1)
    if not (DATA / "clips.jsonl").is_file():
        raise SystemExit(f"{DATA} is missing: build it with `cadenza train audio-data`")
    started = time.time()
    probe = InstrumentProbe.fit(DATA, "train", max_clips=300 if quick else 1500)
    log(f"probe fitted in {time.time() - started:.0f} s on {len(probe.classes)} instruments")
    studio = Studio(threads=1)
    models = [m for m in MODELS if m in studio.specs()]
    ear = Transcriber(threads=1)
    asked = make_prompts(prompts or (6 if quick else 20), tuple(probe.classes), seed)
    rows: dict[str, list[dict]] = {"reference": []}
    timings: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-") as work:
        for index, (text, instrument, key, bpm) in enumerate(asked):
            request = Conditioning(text=text, duration_s=DURATION_S)
            plan = plan_compose(request, frozenset({Capability.MELODY_MIDI}), "audio", default_s=DURATION_S,
                                max_s=DURATION_S, composer=DEFAULT_COMPOSER)
            score = in_register(studio.generate(plan.composer, plan.request, Sampling(seed=seed + index))[0], text)
            path = score.save(Path(work) / f"score-{index}.mid", sidecar=False)
            notes = score_notes(score.score)
            duration = min(score.duration_s + SCORE_TAIL_S, DURATION_S)
            reference = reference_audio(score.score, instrument, 16000, duration)
            rows["reference"].append(judge(reference, 16000, key, bpm, notes, ear, probe, instrument))
            for model in models:
                performs = Capability.MELODY_MIDI in studio.spec(model).capabilities  # a text-only model: text only
                ways = (("", None), (" --strength 1", 1.0), (" --no-compose", None)) if performs else ((" --no-compose", None),)
                for suffix, strength in ways:
                    name, compose = model + suffix, suffix != " --no-compose"
                    conditioning = (Conditioning(text=text, melody=str(path), duration_s=duration) if compose
                                    else Conditioning(text=text, compose=False, duration_s=DURATION_S))
                    began = time.perf_counter()
                    out = studio.generate(model, conditioning, Sampling(seed=seed + index, strength=strength))[0]
                    timings.setdefault(name, []).append(time.perf_counter() - began)
                    figures = judge(out.samples[0], out.sample_rate, key, bpm, notes if compose else None, ear, probe,
                                    instrument)
                    rows.setdefault(name, []).append(figures)
                    log(f"[{index + 1}/{len(asked)}] {name}: {text!r} -> key {figures['heard_key']}, "
                        f"{figures['heard_bpm']} BPM, F1 {figures['melody_f1']}, {figures['heard_instrument']}")
            log(f"[{index + 1}/{len(asked)}] reference: key {rows['reference'][-1]['heard_key']}, "
                f"F1 {rows['reference'][-1]['melody_f1']:.2f}")
    result = {"prompts": len(asked), "seed": seed, "seconds": DURATION_S, "composer": DEFAULT_COMPOSER,
              "probe_instruments": len(probe.classes), "threads": 1}
    for name, made in rows.items():
        result[name] = summarise(made)
        if name in timings:
            result[name]["seconds_per_output"] = round(float(np.mean(timings[name])), 2)
    result["wall_s"] = round(time.time() - started, 1)
    return result
