"""A tiny corpus (MIDI files written with symusic + MANIFEST.tsv) and its token cache, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic

from cadenza.data.corpus import read_manifest
from cadenza.data.splits import split_of
from cadenza.generators.symbolic.dataset import prepare_dataset

FREE = "music21 corpus terms (test)"
NONCOMMERCIAL = "non-commercial use only (test)"


def tune(seed: int, meter: tuple[int, int], bars: int = 8, tpq: int = 480) -> symusic.Score:
    """A stepwise melody with a held note on each downbeat, ``bars`` bars of ``meter``."""
    score = symusic.Score(tpq)
    score.time_signatures.append(symusic.TimeSignature(0, *meter))
    score.tempos.append(symusic.Tempo(0, 110.0))
    track = symusic.Track(program=0)
    beat = tpq * 4 // meter[1]
    scale = [62, 64, 66, 67, 69, 71, 73, 74]  # D major
    t, i = 0, seed
    for _ in range(bars):
        for b in range(meter[0]):
            track.notes.append(symusic.Note(t, beat, scale[i % len(scale)] + (12 if seed % 2 and b == 0 else 0), 80))
            t += beat
            i += 1 + (seed + b) % 3
    score.tracks.append(track)
    return score


def pick_names(split: str, count: int, collection: str) -> list[str]:
    """File names that ``split_of`` sends to ``split`` (so every split of the tiny corpus is non-empty)."""
    names, n = [], 0
    while len(names) < count:
        rel = f"{collection}/tune{n}.mid"
        if split_of(rel) == split:
            names.append(rel)
        n += 1
    return names


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """6 free pieces (4 train, 1 validation, 1 test) and 1 non-commercial piece, with MANIFEST.tsv."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    chosen = pick_names("train", 4, "oneills1850") + pick_names("validation", 1, "bach") + pick_names("test", 1, "bach")
    meters = [(4, 4), (6, 8), (3, 4), (2, 4), (4, 4), (3, 4)]
    for seed, (rel, meter) in enumerate(zip(chosen, meters)):
        rows.append((rel, rel.split("/")[0], FREE))
        path = root / "midi" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tune(seed, meter).dump_midi(str(path))
    rel = pick_names("train", 1, "essenFolksong")[0]
    (root / "midi" / rel).parent.mkdir(parents=True, exist_ok=True)
    tune(9, (2, 4)).dump_midi(str(root / "midi" / rel))
    rows.append((rel, "essenFolksong", NONCOMMERCIAL))
    lines = ["path\tcollection\tlicense"] + ["\t".join(r) for r in rows]
    (root / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def prepared(corpus_dir, tmp_path_factory) -> tuple[Path, dict]:
    """(data dir, summary) of ``prepare_dataset`` on the tiny corpus, default licence filter."""
    out = tmp_path_factory.mktemp("data")
    summary = prepare_dataset(corpus_dir, out, read_manifest(corpus_dir), workers=1, progress=False)
    return out, summary
