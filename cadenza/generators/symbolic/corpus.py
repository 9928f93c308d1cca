"""Rebuild the training corpus from the music21 package: score -> MIDI, with the repairs it needs.

music21 ships ~15,000 works. Three repairs make almost all of them convert (see the shared corpus notes):
every time signature is replaced by a fresh copy (music21 shares one object between measures and then
fails with StreamException), repeats that cannot be expanded are removed, and long files are kept.
Some pieces take minutes to parse, so each runs in a worker process with a timeout.
Collections whose rights are reserved (Palestrina) are left out unless explicitly requested.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

from cadenza.fileio import atomic_path

RESTRICTED_COLLECTIONS = {"palestrina": "rights to all derivative electronic formats reserved"}
NONCOMMERCIAL_COLLECTIONS = {"essenFolksong": "Essen Folksong Collection: non-commercial use only"}
COPYLEFT_COLLECTIONS = {"josquin": "GPL-2+ (encoder header)"}
DEFAULT_LICENSE = "music21 corpus terms (distributed with permission; public-domain sources)"


@dataclass(frozen=True)
class CorpusEntry:
    """One converted score: ``path`` is relative to the corpus' ``midi/`` folder."""

    path: str
    collection: str
    license: str


def license_of(collection: str) -> str:
    return NONCOMMERCIAL_COLLECTIONS.get(collection) or COPYLEFT_COLLECTIONS.get(collection) or DEFAULT_LICENSE


def read_manifest(corpus_dir: str | os.PathLike) -> list[CorpusEntry]:
    """Entries of ``<corpus_dir>/MANIFEST.tsv`` (columns: path, collection, ..., license)."""
    with open(Path(corpus_dir) / "MANIFEST.tsv", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [CorpusEntry(r["path"], r["collection"], r.get("license") or license_of(r["collection"])) for r in rows]


def _repair_and_write(score, target: Path) -> int:
    import copy

    from music21 import meter, repeat

    for ts in list(score.recurse().getElementsByClass(meter.TimeSignature)):
        ts.activeSite.replace(ts, copy.deepcopy(ts))
    try:
        expanded = score.expandRepeats()
    except Exception:  # music21 raises several unrelated types here; the repair is to drop the repeats
        for bar in list(score.recurse().getElementsByClass(repeat.RepeatMark)):
            bar.activeSite.remove(bar)
        expanded = score
    with atomic_path(target) as tmp:
        expanded.write("midi", fp=str(tmp))
    return len(list(expanded.recurse().notes))


def _convert_one(args: tuple[str, int, str]) -> tuple[str, int, str]:
    source, index, target = args
    from music21 import corpus

    parsed = corpus.parse(source)
    scores = list(parsed.scores) if hasattr(parsed, "scores") and len(getattr(parsed, "scores", [])) else [parsed]
    return source, _repair_and_write(scores[index], Path(target)), ""


def rebuild_from_music21(out_dir: str | os.PathLike, collections: list[str] | None = None, timeout_s: float = 120.0,
                         include_restricted: bool = False, limit: int | None = None) -> list[CorpusEntry]:
    """Convert the installed music21 corpus into ``<out_dir>/midi/<collection>/<file>.<i>.mid`` + MANIFEST.tsv.

    Each score is converted in a worker process and abandoned after ``timeout_s`` seconds.
    Returns the entries written. ``limit`` caps the number of source files (for tests and smoke runs).
    """
    from music21 import corpus

    out = Path(out_dir)
    jobs: list[tuple[str, int, str, str]] = []
    for source in sorted(str(p) for p in corpus.getComposer("") or corpus.getPaths()):
        rel = os.path.relpath(source, corpus.getCorePaths()[0].parent if hasattr(corpus.getCorePaths()[0], "parent") else "")
        parts = Path(source).parts
        collection = parts[parts.index("corpus") + 1] if "corpus" in parts else Path(source).parent.name
        if collections and collection not in collections:
            continue
        if collection in RESTRICTED_COLLECTIONS and not include_restricted:
            continue
        name = Path(source).name
        jobs.append((source, 0, str(out / "midi" / collection / f"{name}.0.mid"), collection))
        del rel
        if limit and len(jobs) >= limit:
            break
    entries: list[CorpusEntry] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=20) as pool:
        for source, index, target, collection in jobs:
            result = pool.apply_async(_convert_one, ((source, index, target),))
            try:
                _, notes, _ = result.get(timeout=timeout_s)
            except mp.TimeoutError:
                pool.terminate()
                pool = ctx.Pool(1, maxtasksperchild=20)
                continue
            except Exception:  # a score music21 cannot parse or write: skipped, like the shared corpus' 6 failures
                continue
            if notes:
                entries.append(CorpusEntry(os.path.relpath(target, out / "midi"), collection, license_of(collection)))
    write_manifest(out, entries)
    return entries


def write_manifest(corpus_dir: str | os.PathLike, entries: list[CorpusEntry]) -> None:
    lines = ["path\tcollection\tlicense"] + [f"{e.path}\t{e.collection}\t{e.license}" for e in entries]
    with atomic_path(Path(corpus_dir) / "MANIFEST.tsv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
