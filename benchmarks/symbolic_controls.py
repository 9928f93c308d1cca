"""How exactly the symbolic model obeys its controls, and how musical its pitch content is.

40 random requests (key among 24, tempo 60-180, meter among 2/4 3/4 4/4 6/8, bars 4-32), one sample each:
- ``decoded``: fraction that decode to a MIDI file with notes;
- ``exact_controls``: fraction whose bar count (Bar tokens written, and no note past the last bar), tempo
  and meter in the saved MIDI are exactly the requested ones;
- ``key_adherence``: fraction whose Krumhansl-Schmuckler key (duration-weighted) is the requested key, with
  the model's default sampling; ``key_adherence_without_bias``: the same requests with the soft key bias off;
- pitch-class entropy and scale consistency of unconditioned samples vs the held-out test split
  (``pc_entropy_rel_diff``, ``scale_consistency_rel_diff``: |generated - test| / test).
The reference is the test set of the same run; no timing is asserted.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

from benchmarks.paths import DATA

MODEL = os.environ.get("CADENZA_BENCH_SYMBOLIC", "remi-folk-small")
METERS = ("2/4", "3/4", "4/4", "6/8")


def _pitch_stats(pitches, durations) -> tuple[float, float]:
    import numpy as np

    from cadenza.music.theory import ALL_KEYS

    counts = np.bincount(np.asarray(pitches) % 12, minlength=12).astype(float)
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    consistency = max(float(counts[list(k.scale_pitch_classes()[:7])].sum() / counts.sum()) for k in ALL_KEYS)
    return entropy, consistency


def _key_name(pitches, durations) -> str:
    from cadenza.music.theory import estimate_key, pitch_class_histogram

    return estimate_key(pitch_class_histogram(pitches, durations)).name


def _notes(score):
    import numpy as np

    arrays = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    if not arrays:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return (np.concatenate([a["pitch"] for a in arrays]), np.concatenate([a["duration"] for a in arrays]),
            np.concatenate([a["time"] for a in arrays]))


def main(quick: bool) -> dict:
    import numpy as np
    import symusic

    from cadenza import Conditioning, Sampling, Studio
    from cadenza.music.theory import ALL_KEYS, parse_time_signature

    studio = Studio()
    n_requests = 12 if quick else 40
    n_free = 20 if quick else 100
    rnd = random.Random(2026)
    decoded = exact = in_key = in_key_unbiased = 0
    keyed_stats = []  # pitch statistics of the key-conditioned outputs (key bias + candidates at work)
    default_bias = None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_requests):
            key = rnd.choice(ALL_KEYS).name
            tempo = rnd.randint(60, 180)
            meter = rnd.choice(METERS)
            bars = rnd.randint(4, 32)
            out = studio.generate(MODEL, Conditioning(key=key, tempo_bpm=tempo, time_signature=meter, bars=bars),
                                  Sampling(seed=i))[0]
            path = out.save(Path(tmp) / f"{i}.mid")
            score = symusic.Score(path)
            pitches, durations, onsets = _notes(score)
            if pitches.size == 0:
                print(f"request {i}: empty output")
                continue
            decoded += 1
            ts = parse_time_signature(meter)
            bar_ticks = ts.quarters_per_bar * score.ticks_per_quarter
            sig = score.time_signatures[0] if len(score.time_signatures) else None
            ok = (out.provenance.notes.get("bars_written") == bars and onsets.max() < bars * bar_ticks
                  and abs(score.tempos[0].qpm - tempo) < 1e-3 and len(score.tempos) == 1
                  and sig is not None and (sig.numerator, sig.denominator) == (ts.numerator, ts.denominator)
                  and len(score.time_signatures) == 1)
            exact += ok
            default_bias = out.provenance.notes["key_bias"]
            found = _key_name(pitches, durations)
            in_key += found == key
            keyed_stats.append(_pitch_stats(pitches, durations))
            # the same request with the soft key bias off: what conditioning alone achieves
            plain = studio.generate(MODEL, Conditioning(key=key, tempo_bpm=tempo, time_signature=meter, bars=bars),
                                    Sampling(seed=i, key_bias=0.0))[0]
            p2, d2, _ = _notes(plain.score)
            found_plain = _key_name(p2, d2) if p2.size else None
            in_key_unbiased += found_plain == key
            print(f"request {i}: {key}, {meter}, {bars} bars, {tempo} BPM -> key {found} "
                  f"(bias {out.provenance.notes['key_bias']}; without bias {found_plain}), exact {ok}")
        generated_stats = []
        for i in range(n_free):
            out = studio.generate(MODEL, Conditioning(bars=16), Sampling(seed=10_000 + i))[0]
            pitches, durations, _ = _notes(out.score)
            if pitches.size:
                generated_stats.append(_pitch_stats(pitches, durations))
    test_stats = []
    spec = studio.spec(MODEL)
    corpus = Path(os.environ.get("CADENZA_CORPUS", Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
    pieces_file = DATA / "symbolic" / "test_pieces.txt"
    if pieces_file.exists() and (corpus / "midi").is_dir():
        for rel in pieces_file.read_text().splitlines():
            if not rel.strip():
                continue
            pitches, durations, _ = _notes(symusic.Score(corpus / "midi" / rel))
            if pitches.size:
                test_stats.append(_pitch_stats(pitches, durations))
    figures = {"model": spec.name, "requests": n_requests, "decoded": decoded / n_requests,
               "exact_controls": exact / n_requests, "key_adherence": in_key / n_requests,
               "key_adherence_without_bias": in_key_unbiased / n_requests,
               "default_key_bias": default_bias}
    if test_stats and generated_stats:
        gen, ref = np.mean(generated_stats, axis=0), np.mean(test_stats, axis=0)
        figures.update({"pc_entropy_generated": round(float(gen[0]), 4), "pc_entropy_test": round(float(ref[0]), 4),
                        "scale_consistency_generated": round(float(gen[1]), 4),
                        "scale_consistency_test": round(float(ref[1]), 4),
                        "pc_entropy_rel_diff": round(float(abs(gen[0] - ref[0]) / ref[0]), 4),
                        "scale_consistency_rel_diff": round(float(abs(gen[1] - ref[1]) / ref[1]), 4),
                        "test_pieces": len(test_stats), "free_samples": len(generated_stats)})
        if keyed_stats:
            keyed = np.mean(keyed_stats, axis=0)
            figures.update({"pc_entropy_key_requested": round(float(keyed[0]), 4),
                            "pc_entropy_key_requested_rel_diff": round(float(abs(keyed[0] - ref[0]) / ref[0]), 4)})
    else:
        print("test split not found (run `cadenza train symbolic --prepare`): pitch statistics skipped")
    figures["ratio"] = figures["key_adherence"]
    return figures
