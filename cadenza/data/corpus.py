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

from cadenza.errors import InputNotFound
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


def _convert_source(source: str, out_dir: str, collection: str) -> list[tuple[str, int]]:
    """Parse one corpus file (an ABC book holds many tunes) and write one MIDI per score."""
    from music21 import corpus, stream

    parsed = corpus.parse(source)
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    written = []
    for index, score in enumerate(scores):
        target = Path(out_dir) / "midi" / collection / f"{Path(source).name}.{index}.mid"
        try:
            notes = _repair_and_write(score, target)
        except Exception:  # music21 fails on a handful of scores in many different ways; skip those scores
            continue
        if notes:
            written.append((os.path.relpath(target, Path(out_dir) / "midi"), notes))
    return written


def collection_of(source: str) -> str:
    parts = Path(source).parts
    return parts[len(parts) - 1 - parts[::-1].index("corpus") + 1]


def rebuild_from_music21(out_dir: str | os.PathLike, collections: list[str] | None = None, timeout_s: float = 120.0,
                         include_restricted: bool = False, limit: int | None = None) -> list[CorpusEntry]:
    """Convert the installed music21 corpus into ``<out_dir>/midi/<collection>/<file>.<i>.mid`` + MANIFEST.tsv.

    Each source file is converted in a worker process and abandoned after ``timeout_s`` seconds (a few
    pieces take many minutes). ``limit`` caps the number of source files (for tests and smoke runs).
    Returns the entries written.
    """
    from music21 import corpus

    sources = [str(p) for p in corpus.corpora.CoreCorpus().getPaths()]
    jobs = []
    for source in sources:
        collection = collection_of(source)
        if collections and collection not in collections:
            continue
        if collection in RESTRICTED_COLLECTIONS and not include_restricted:
            continue
        jobs.append((source, collection))
    jobs = jobs[:limit] if limit else jobs
    entries: list[CorpusEntry] = []
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(1, maxtasksperchild=50)
    try:
        for source, collection in jobs:
            result = pool.apply_async(_convert_source, (source, os.fspath(out_dir), collection))
            try:
                written = result.get(timeout=timeout_s)
            except mp.TimeoutError:
                pool.terminate()  # the only way to stop a stuck parse; start a fresh worker
                pool = ctx.Pool(1, maxtasksperchild=50)
                continue
            except Exception:  # an unparseable source file: skipped, like the 6 failures of the shared cache
                continue
            entries += [CorpusEntry(path, collection, license_of(collection)) for path, _ in written]
    finally:
        pool.terminate()
    write_manifest(out_dir, entries)
    return entries


def write_manifest(corpus_dir: str | os.PathLike, entries: list[CorpusEntry]) -> None:
    lines = ["path\tcollection\tlicense"] + [f"{e.path}\t{e.collection}\t{e.license}" for e in entries]
    with atomic_path(Path(corpus_dir) / "MANIFEST.tsv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def given_corpus(path: str | os.PathLike) -> Path:
    """A corpus folder named by the user (``--corpus DIR``), which must already be one: a missing or
    non-corpus folder is an error, never a place to start rebuilding into.

    Raises:
        InputNotFound: ``path`` has no ``MANIFEST.tsv``.
    """
    corpus = Path(path)
    if not (corpus / "MANIFEST.tsv").is_file():
        raise InputNotFound(f"{corpus} is not a corpus folder (no MANIFEST.tsv): give a folder with "
                            "MANIFEST.tsv and midi/, or leave --corpus out to rebuild one from music21")
    return corpus

