"""`cadenza train audio-data`: render the symbolic corpus into captioned audio clips.

The clips (``data/audio/clips.jsonl`` + FLAC files) are what `cadenza train codec`, `cadenza train
codec-lm` and `cadenza train diffusion` learn from. Deterministic for a given seed and resumable.
Default corpus: ``../shared/corpus`` when present, else rebuilt from the installed music21 package.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("--corpus", help="a folder with MANIFEST.tsv + midi/ (default: ../shared/corpus or data/corpus)")
    p.add_argument("--out", default="data/audio", help="output folder (clips.jsonl + clips/)")
    p.add_argument("--clips", type=int, default=3000, help="number of clips")
    p.add_argument("--clip-seconds", type=float, default=8.0, help="length of each clip")
    p.add_argument("--sample-rate", type=int, default=16000, help="Hz")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from cadenza.data.audio_corpus import AudioCorpusConfig, build_audio_corpus
    from cadenza.data.corpus import given_corpus, rebuild_from_music21

    corpus = given_corpus(args.corpus) if args.corpus else next(
        (p for p in (Path("../shared/corpus"), Path("data/corpus")) if (p / "MANIFEST.tsv").exists()), Path("data/corpus"))
    if not (corpus / "MANIFEST.tsv").exists():
        print(f"rebuilding the corpus from music21 into {corpus} ...", file=sys.stderr)
        rebuild_from_music21(corpus)
    config = AudioCorpusConfig(clips=args.clips, clip_s=args.clip_seconds, sample_rate=args.sample_rate, seed=args.seed)
    summary = build_audio_corpus(corpus, args.out, config)
    print(f"{args.out}: {summary}")
    return 0
