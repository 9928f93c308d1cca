"""Whole tunes from the symbolic model: clean endings, form, one line where the style is one line, infilling.

Figures (the corpus figures come from the same code in the same run):
- ``pileups``: outputs with an onset holding more distinct pitches than its style's cap (``STYLE_LIMITS``),
  over ``requests`` random requests spread over every meter the model writes, bar counts 4-32, and form
  plans (none, AABB, AABA, ABAB, ABAC, A A' B B', sized ones); ``form_exact``: share of them whose every
  repeat is in the file bar for bar (and whose second endings differ); ``bars_exact``: share with exactly
  the bars asked for and no note past the last;
- ``repeated_bar_rate``: mean share of bars equal to an earlier bar in 16-bar irish tunes with no form set
  (the style's default form), ``corpus_repeated_bar_rate``: the same measure on the first 16 bars of the
  corpus's irish tunes;
- ``overlap_rate`` / ``same_onset_rate`` of single-line styles (irish, scottish, folk-song) generated vs
  ``corpus_overlap_rate`` / ``corpus_same_onset_rate`` (notes sounding past the next onset; notes
  sharing an onset), and ``*_diff_points`` = |generated - corpus| in percentage points;
- infilling on held-out (test split) pieces: ``infill_context_exact``: share of regenerated files whose
  notes outside the gap are exactly the original's; ``infill_nll_gain``: mean NLL (nats/token) of the
  true gap bars without the suffix in view minus with it (> 0: the model uses what comes after);
- ``corpus_limits``: per style, the 99.9th percentile of distinct pitches per onset and notes per quarter
  in the training split (what ``STYLE_LIMITS`` was set from).
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

from benchmarks.paths import DATA

MODEL = os.environ.get("CADENZA_BENCH_SYMBOLIC", "remi-folk-small")
SINGLE_LINE = ("irish", "scottish", "folk-song")
PLANS = (None, "AABB", "AABA", "ABAB", "ABAC", "A A' B B'", "A A' B B' A", "ABA")
IRISH = ("oneills1850", "ryansMammoth")


def _corpus_dir() -> Path:
    return Path(os.environ.get("CADENZA_CORPUS", Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))


def _onset_caps(score, style: str) -> int:
    """Number of onsets in ``score`` holding more distinct pitches than ``style`` allows."""
    from cadenza.tokenizers.styles import STYLE_LIMITS

    onsets: dict[int, set] = {}
    for track in score.tracks:
        for note in track.notes:
            onsets.setdefault(note.time, set()).add(note.pitch)
    return sum(1 for pitches in onsets.values() if len(pitches) > STYLE_LIMITS[style].notes_per_onset)


def corpus_figures(max_pieces: int) -> dict:
    """Repeated-bar rate of 16-bar irish tunes and onset figures of single-line styles, from corpus MIDI."""
    import numpy as np
    import symusic

    from cadenza.data.corpus import read_manifest
    from cadenza.generators.symbolic.dataset import style_of
    from cadenza.music.form import onset_stats, repeated_bar_rate

    corpus = _corpus_dir()
    entries = read_manifest(corpus)
    rnd = random.Random(7)
    rnd.shuffle(entries)
    repeats, stats, counts = [], {s: [] for s in SINGLE_LINE}, {s: 0 for s in SINGLE_LINE}
    for entry in entries:
        style = style_of(entry.collection)
        want_repeat = entry.collection in IRISH and len(repeats) < max_pieces
        want_stats = style in SINGLE_LINE and counts[style] < max_pieces
        if not (want_repeat or want_stats):
            continue
        try:
            score = symusic.Score(corpus / "midi" / entry.path)
        except Exception:
            continue
        if want_repeat:
            sigs = score.time_signatures
            num, den = (sigs[0].numerator, sigs[0].denominator) if len(sigs) else (4, 4)
            bar_ticks = num * 4 / den * score.ticks_per_quarter
            last = max((n.time for t in score.tracks for n in t.notes), default=0)
            if last >= 15 * bar_ticks and len(sigs) <= 1:
                repeats.append(repeated_bar_rate(score, 16))
        if want_stats:
            counts[style] += 1
            overlap, same = onset_stats(score)
            notes = sum(len(t.notes) for t in score.tracks)
            stats[style].append((overlap * notes, same * notes, notes))
    out = {"corpus_repeated_bar_rate": round(float(np.mean(repeats)), 4), "corpus_irish_tunes": len(repeats)}
    total = np.array([x for s in SINGLE_LINE for x in stats[s]]).sum(0)
    out["corpus_overlap_rate"] = round(float(total[0] / total[2]), 4)
    out["corpus_same_onset_rate"] = round(float(total[1] / total[2]), 4)
    return out


def corpus_limits() -> dict:
    """Per style, p99.9 of distinct pitches per onset and of notes per quarter in the training token cache."""
    import math

    import numpy as np

    from cadenza.generators.symbolic.dataset import TokenCache
    from cadenza.tokenizers.remi import RemiTokenizer

    data = DATA / "symbolic"
    if not (data / "train.npz").exists():
        return {}
    tok = RemiTokenizer.load(data / "tokenizer.json")
    cache = TokenCache(data / "train.npz")
    position = {i: int(tok.value_of(i)) for i in tok.ids_of_type("Position")}
    meters = {i: tok.value_of(i) for i in tok.ids_of_type("TimeSig")}
    pitches = set(tok.ids_of_type("Pitch"))
    per_onset: dict[str, list] = {}
    per_quarter: dict[str, list] = {}
    for piece in range(cache.num_pieces):
        style = tok.value_of(int(cache.piece_style[piece]))
        for bar in range(cache.piece_bar_offsets[piece], cache.piece_bar_offsets[piece + 1]):
            ids = cache.tokens[cache.bar_offsets[bar]:cache.bar_offsets[bar + 1]].tolist()
            if len(ids) < 2 or ids[1] not in meters:
                continue
            num, den = (int(x) for x in meters[ids[1]].split("/"))
            onsets: dict[int, set] = {}
            at = -1
            for t in ids:
                if t in position:
                    at = position[t]
                elif t in pitches:
                    onsets.setdefault(at, set()).add(t)
            per_onset.setdefault(style, []).extend(len(v) for v in onsets.values())
            per_quarter.setdefault(style, []).append(sum(len(v) for v in onsets.values()) / (num * 4 / den))
    return {s: {"notes_per_onset": int(math.ceil(np.percentile(per_onset[s], 99.9))),
                "notes_per_quarter": round(float(np.percentile(per_quarter[s], 99.9)), 1)} for s in sorted(per_onset)}


def _requests(n: int, meters: list[str], rnd: random.Random) -> list[dict]:
    from cadenza.tokenizers.styles import STYLES

    out = []
    for i in range(n):
        meter = meters[i % len(meters)]
        plan = PLANS[i % len(PLANS)]
        request = {"time_signature": meter, "style": rnd.choice(STYLES)}
        sections = len(plan.replace(" ", "").replace("'", "")) if plan else 1
        if plan and rnd.random() < 0.3:  # a sized plan: sections of 2-8 bars
            size = rnd.randint(2, 8)
            plan = " ".join(f"{part}{size}" for part in plan.split()) if " " in plan else \
                " ".join(f"{letter}{size}" for letter in plan)
            request["form"] = plan
        else:
            bars = rnd.randint(max(4, sections), 32)
            bars -= bars % sections
            if plan:
                request["form"] = plan
            request["bars"] = max(bars, sections * 2 if plan and "'" in plan else sections)
        out.append(request)
    return out


def infill_figures(studio, n_pieces: int, tmp: Path) -> dict:
    """Regenerate a random gap of held-out pieces; check the context is kept; NLL of the true gap with
    and without the suffix in view."""
    import numpy as np
    import symusic
    import torch
    import torch.nn.functional as F

    from cadenza.conditioning import Conditioning, Sampling
    from cadenza.generators.symbolic.generator import SymbolicGenerator
    from cadenza.generators.symbolic.infill import InfillRequest, bar_starts, infill_context
    from cadenza.music.theory import estimate_key, score_pitch_class_histogram
    from cadenza.tokenizers.remi import ControlPrefix

    pieces_file = DATA / "symbolic" / "test_pieces.txt"
    corpus = _corpus_dir()
    if not pieces_file.exists():
        print("test split not found (run `cadenza train symbolic --prepare`): infilling skipped")
        return {}
    from cadenza.data.corpus import read_manifest
    from cadenza.generators.symbolic.dataset import style_of
    collection = {e.path: e.collection for e in read_manifest(corpus)}
    generator = SymbolicGenerator.from_checkpoint(studio.spec(MODEL))
    tok, model = generator.tokenizer, generator.model
    rnd = random.Random(11)
    paths = [p.strip() for p in pieces_file.read_text().splitlines() if p.strip()]
    rnd.shuffle(paths)
    exact, gains, done = 0, [], 0
    for rel in paths:
        if done >= n_pieces:
            break
        path = corpus / "midi" / rel
        score = symusic.Score(path)
        if len(score.time_signatures) > 1:
            continue
        bars = tok.split_bars(tok.encode_body(score))
        if len(bars) < 8 or sum(len(b) for b in bars) > 4000:
            continue
        size = rnd.randint(1, 4)
        first = rnd.randint(1, len(bars) - size - 1)
        # 1. the studio path: the file back with only bars first+1 .. first+size written anew
        out = studio.generate(MODEL, Conditioning(prompt=str(path), regenerate=(first + 1, first + size)),
                              Sampling(seed=done))[0]
        saved = symusic.Score(out.save(tmp / f"infill-{done}.mid"))
        starts = bar_starts(score, len(bars))
        lo, hi = starts[first], starts[first + size]
        scale = saved.ticks_per_quarter / score.ticks_per_quarter

        kept = sorted((int(round(n.time * scale)), int(round(n.duration * scale)), n.pitch, n.velocity)
                      for t in score.tracks for n in t.notes if not lo <= n.time < hi)
        got = sorted((n.time, n.duration, n.pitch, n.velocity)
                     for t in saved.tracks for n in t.notes if not lo * scale <= n.time < hi * scale)
        exact += kept == got
        # 2. the model: NLL of the true gap with the suffix in view vs with an empty suffix
        meter = score.time_signatures[0] if len(score.time_signatures) else None
        from cadenza.music.theory import TimeSignature
        ts = TimeSignature(meter.numerator, meter.denominator) if meter else TimeSignature(4, 4)
        if f"Meter_{ts.name}" not in tok.vocab:
            continue
        style = style_of(collection.get(rel, ""))
        controls = tok.control_ids(ControlPrefix(style, estimate_key(score_pitch_class_histogram(score)), ts, len(bars)))
        gap = InfillRequest(first, size, len(bars), tuple(range(len(bars) + 1)))
        middle = [i for bar in bars[first:first + size] for i in bar] + [tok.eos_id]
        nll = []
        for context in (infill_context(tok, controls, bars, gap, model.max_seq_len),
                        infill_context(tok, controls, bars[:first + size], gap, model.max_seq_len)):
            ids = torch.tensor([(context + middle)[:model.max_seq_len]])
            with torch.no_grad():
                logits = model(ids[:, :-1]).float()
            targets = ids[0, len(context):]
            nll.append(F.cross_entropy(logits[0, len(context) - 1:], targets).item())
        gains.append(nll[1] - nll[0])
        done += 1
        print(f"infill {rel}: bars {first + 1}-{first + size} of {len(bars)}, context kept {kept == got}, "
              f"NLL with suffix {nll[0]:.3f} without {nll[1]:.3f}")
    return {"infill_pieces": done, "infill_context_exact": round(exact / max(done, 1), 4),
            "infill_nll_gain": round(float(np.mean(gains)), 4) if gains else None}


def main(quick: bool) -> dict:
    import numpy as np
    import symusic

    from cadenza import Conditioning, Sampling, Studio
    from cadenza.music.form import form_exact, onset_stats, parse_form, repeated_bar_rate
    from cadenza.music.theory import parse_time_signature
    from cadenza.tokenizers.remi import RemiTokenizer

    studio = Studio()
    spec = studio.spec(MODEL)
    tok = RemiTokenizer.load(spec.path("tokenizer"))
    meters = tok.meters()
    rnd = random.Random(2026)
    n_requests = 40 if quick else 210
    n_irish = 10 if quick else 40
    figures: dict = {"model": spec.name, "requests": n_requests}
    pileups = forms_ok = bars_ok = planned = 0
    line_stats = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i, request in enumerate(_requests(n_requests, meters, rnd)):
            out = studio.generate(MODEL, Conditioning(**request), Sampling(seed=i))[0]
            score = symusic.Score(out.save(tmp / f"{i}.mid"))
            notes = out.provenance.notes
            style, bars = notes["style"], notes["bars"]
            piled = _onset_caps(score, style)
            pileups += piled > 0
            ts = parse_time_signature(notes["time_signature"])
            bar_ticks = ts.quarters_per_bar * score.ticks_per_quarter
            last_end = max(n.time + n.duration for t in score.tracks for n in t.notes)
            bars_ok += notes["bars_written"] == bars and last_end <= bars * bar_ticks + 1
            form_ok = None
            if notes["form"] != "through-composed":
                planned += 1
                form_ok = form_exact(score, parse_form(notes["form"], bars))
                forms_ok += form_ok
            if style in SINGLE_LINE:
                overlap, same = onset_stats(score)
                n = sum(len(t.notes) for t in score.tracks)
                line_stats.append((overlap * n, same * n, n))
            print(f"request {i}: {request} -> {style}, form {notes['form']}, pileups {piled}, form exact {form_ok}")
        rates = []
        for i in range(n_irish):
            out = studio.generate(MODEL, Conditioning(style="irish", bars=16), Sampling(seed=5000 + i))[0]
            rates.append(repeated_bar_rate(out.score, 16))
            overlap, same = onset_stats(out.score)
            n = sum(len(t.notes) for t in out.score.tracks)
            line_stats.append((overlap * n, same * n, n))
        figures.update({"pileups": pileups, "bars_exact": round(bars_ok / n_requests, 4),
                        "form_requests": planned, "form_exact": round(forms_ok / max(planned, 1), 4),
                        "repeated_bar_rate": round(float(np.mean(rates)), 4), "irish_tunes": n_irish})
        total = np.array(line_stats).sum(0)
        figures["overlap_rate"] = round(float(total[0] / total[2]), 4)
        figures["same_onset_rate"] = round(float(total[1] / total[2]), 4)
        figures.update(corpus_figures(60 if quick else 300))
        for name in ("overlap_rate", "same_onset_rate"):
            figures[f"{name}_diff_points"] = round(abs(figures[name] - figures[f"corpus_{name}"]) * 100, 2)
        figures.update(infill_figures(studio, 8 if quick else 40, tmp))
    figures["corpus_limits"] = corpus_limits()
    return figures
