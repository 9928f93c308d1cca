"""Token cache for the symbolic model: corpus MIDI -> bars of REMI ids, labels, and work-level splits.

``prepare_dataset`` tokenizes every piece once and stores, per bar, its ids, its meter and its
duration-weighted pitch-class histogram; ``ChunkSampler`` then draws training sequences from that
cache: a random span of whole bars, a random transposition, and the control prefix that describes it
(the key is found by Krumhansl-Schmuckler on the transposed span, so labels follow augmentation).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic
import torch

from cadenza.data.corpus import CorpusEntry
from cadenza.data.splits import SPLITS, split_of
from cadenza.fileio import atomic_path, atomic_write_text
from cadenza.music.theory import TimeSignature, estimate_key
from cadenza.tokenizers.remi import ControlPrefix, RemiTokenizer

COLLECTION_STYLE = {
    "oneills1850": "irish", "ryansMammoth": "irish", "airdsAirs": "scottish", "bach": "chorale",
    "beethoven": "string-quartet", "haydn": "string-quartet", "mozart": "string-quartet",
    "monteverdi": "renaissance", "josquin": "renaissance", "trecento": "renaissance", "ciconia": "renaissance",
    "luca": "renaissance", "lusitano": "renaissance", "palestrina": "renaissance",
    "essenFolksong": "folk-song", "miscFolk": "folk-song",
}


def style_of(collection: str) -> str:
    return COLLECTION_STYLE.get(collection, "classical")


def _duration_beats(tokenizer: RemiTokenizer) -> np.ndarray:
    out = np.zeros(len(tokenizer), dtype=np.float32)
    for idx in tokenizer.ids_of_type("Duration"):
        whole, sub, res = tokenizer.value_of(idx).split(".")
        out[idx] = int(whole) + int(sub) / int(res)
    return out


def bar_histograms(tokenizer: RemiTokenizer, bars: list[list[int]]) -> np.ndarray:
    """Duration-weighted pitch-class histogram of each bar ``[n_bars, 12]``."""
    durations = _duration_beats(tokenizer)
    out = np.zeros((len(bars), 12), dtype=np.float32)
    for b, bar in enumerate(bars):
        ids = np.asarray(bar)
        pitch_at = np.nonzero(tokenizer.pitch_of_id[ids[:-1]] >= 0)[0]
        if pitch_at.size:
            np.add.at(out[b], tokenizer.pitch_of_id[ids[pitch_at]] % 12, durations[ids[pitch_at + 1]])
    return out


@dataclass
class _Piece:
    path: str
    collection: str
    bars: list[list[int]]


def _tokenize_file(args: tuple[str, str, str]) -> _Piece | None:
    midi_path, rel, collection = args
    tokenizer = _worker_tokenizer()
    try:
        score = symusic.Score(midi_path)
        body = tokenizer.encode_body(score)
    except Exception:  # unreadable or untokenizable piece: skipped and counted by the caller
        return None
    bars = tokenizer.split_bars(body)
    return _Piece(rel, collection, bars) if len(bars) >= 2 else None


_TOKENIZER: list[RemiTokenizer] = []  # one per worker process; built lazily, never shared across processes


def _worker_tokenizer() -> RemiTokenizer:
    if not _TOKENIZER:
        _TOKENIZER.append(RemiTokenizer())
    return _TOKENIZER[0]


def prepare_dataset(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, entries: list[CorpusEntry],
                    include_noncommercial: bool = False, include_copyleft: bool = False, workers: int = 2, progress: bool = True) -> dict:
    """Tokenize ``entries`` of ``corpus_dir/midi`` and write ``out_dir/{train,validation,test}.npz`` + ``dataset.json``.

    Returns the summary written to ``dataset.json`` (pieces, bars, tokens per split, licenses).
    """
    tokenizer = RemiTokenizer()
    # By default the model stays free to use: non-commercial (Essen) and GPL-encoded pieces are opt-in.
    chosen = [e for e in entries if (include_noncommercial or not e.license.startswith("non-commercial"))
              and (include_copyleft or "GPL" not in e.license)]
    jobs = [(str(Path(corpus_dir) / "midi" / e.path), e.path, e.collection) for e in chosen]
    pieces: list[_Piece] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        iterator = pool.imap(_tokenize_file, jobs, chunksize=16)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, total=len(jobs), desc="tokenizing", unit="piece")
        pieces = [p for p in iterator if p is not None]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meter_ids = {tokenizer.value_of(i): i for i in tokenizer.ids_of_type("TimeSig")}
    summary: dict = {"tokenizer": "tokenizer.json", "skipped": len(jobs) - len(pieces), "splits": {},
                     "licenses": sorted({e.license for e in chosen}), "collections": sorted({e.collection for e in chosen})}
    for split in SPLITS:
        chosen_pieces = [p for p in pieces if split_of(p.path) == split]
        bars = [bar for p in chosen_pieces for bar in p.bars]
        tokens = np.fromiter((i for bar in bars for i in bar), dtype=np.int16)
        bar_offsets = np.cumsum([0] + [len(b) for b in bars]).astype(np.int64)
        piece_bar_offsets = np.cumsum([0] + [len(p.bars) for p in chosen_pieces]).astype(np.int64)
        bar_meter = np.array([bar[1] if len(bar) > 1 and bar[1] in meter_ids.values() else -1 for bar in bars], dtype=np.int32)
        with atomic_path(out / f"{split}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, tokens=tokens, bar_offsets=bar_offsets, piece_bar_offsets=piece_bar_offsets,
                         bar_meter=bar_meter, bar_hist=bar_histograms(tokenizer, bars),
                         piece_style=np.array([tokenizer.vocab[f"Style_{style_of(p.collection)}"] for p in chosen_pieces], dtype=np.int32))
        atomic_write_text(out / f"{split}_pieces.txt", "\n".join(p.path for p in chosen_pieces) + "\n")
        summary["splits"][split] = {"pieces": len(chosen_pieces), "bars": len(bars), "tokens": int(tokens.size)}
    tokenizer.save(out / "tokenizer.json")
    atomic_write_text(out / "dataset.json", json.dumps(summary, indent=1))
    return summary


class TokenCache:
    """One split of the token cache, memory-resident (a few MB)."""

    def __init__(self, path: str | os.PathLike) -> None:
        with np.load(path) as data:
            self.tokens = data["tokens"].astype(np.int64)
            self.bar_offsets = data["bar_offsets"]
            self.piece_bar_offsets = data["piece_bar_offsets"]
            self.bar_meter = data["bar_meter"]
            self.bar_hist = data["bar_hist"]
            self.piece_style = data["piece_style"]

    @property
    def num_pieces(self) -> int:
        return len(self.piece_style)


MAX_INFILL_BARS = 8  # the longest gap trained: "regenerate bars 5-8" of a tune, a whole 8-bar part at most


class ChunkSampler:
    """Draws ``[B, L]`` training batches: control prefix + a span of whole bars + EOS, padded with PAD.

    A span starts at the piece's first bar a quarter of the time (the model must learn openings),
    holds 2..``max_bars`` bars that fit in ``seq_len``, stays in one meter, and is transposed by a random
    -5..+6 semitones when ``augment`` (skipped if it would leave the pitch range).

    With probability ``infill_rate`` a span of 2+ bars becomes a fill-in-the-middle sequence: a gap of
    1..``MAX_INFILL_BARS`` whole bars anywhere in it is moved after the rest, so the model learns to write
    bars that lead into what follows them (see ``RemiTokenizer.infill_ids``)::

        controls(Bars_N) prefix-bars Infill_Suffix suffix-bars Infill_Middle Bars_M middle-bars EOS
    """

    def __init__(self, cache: TokenCache, tokenizer: RemiTokenizer, seq_len: int, max_bars: int = 32,
                 augment: bool = True, seed: int = 0, infill_rate: float = 0.0) -> None:
        if infill_rate and not tokenizer.infill:
            raise ValueError("infill_rate > 0 needs a tokenizer with the infilling tokens")
        self.cache, self.tokenizer, self.seq_len, self.max_bars, self.augment = cache, tokenizer, seq_len, max_bars, augment
        self.infill_rate = infill_rate
        self.rng = np.random.default_rng(seed)
        lengths = np.diff(cache.piece_bar_offsets)
        self.piece_weights = np.sqrt(lengths) / np.sqrt(lengths).sum()  # long quartets do not drown the tunes
        self.meter_token_to_control = {i: tokenizer.vocab[f"Meter_{tokenizer.value_of(i)}"] for i in tokenizer.ids_of_type("TimeSig")}

    def sample_sequence(self) -> np.ndarray:
        cache, tok = self.cache, self.tokenizer
        while True:
            piece = self.rng.choice(cache.num_pieces, p=self.piece_weights)
            first, last = cache.piece_bar_offsets[piece], cache.piece_bar_offsets[piece + 1]
            start = first if self.rng.random() < 0.25 else self.rng.integers(first, last)
            want = int(self.rng.integers(2, self.max_bars + 1))
            meter = cache.bar_meter[start]
            if meter < 0:
                continue
            end = start
            budget = self.seq_len - 6
            while end < last and end - start < want and cache.bar_meter[end] == meter:
                size = cache.bar_offsets[end + 1] - cache.bar_offsets[start]
                if size > budget:
                    break
                end += 1
            if end == start:
                continue
            body = cache.tokens[cache.bar_offsets[start]:cache.bar_offsets[end]]
            hist = cache.bar_hist[start:end].sum(0)
            if hist.sum() == 0:
                continue
            if self.augment:
                shift = int(self.rng.integers(-5, 7))
                try:
                    body = tok.transpose(body, shift)
                    hist = np.roll(hist, shift)
                except ValueError:
                    pass
            key = estimate_key(hist)
            style = tok.id_to_token[cache.piece_style[piece]].split("_", 1)[1]
            num, den = tok.value_of(int(meter)).split("/")
            prefix = tok.control_ids(ControlPrefix(style, key, TimeSignature(int(num), int(den)), int(end - start)))
            if end - start >= 2 and self.rng.random() < self.infill_rate:
                cuts = cache.bar_offsets[start:end + 1] - cache.bar_offsets[start]
                return np.concatenate([prefix, self._infill_body(body, cuts), [tok.eos_id]]).astype(np.int64)
            return np.concatenate([prefix, body, [tok.eos_id]]).astype(np.int64)

    def _infill_body(self, body: np.ndarray, cuts: np.ndarray) -> np.ndarray:
        """``body`` of ``len(cuts) - 1`` bars (bar b is ``body[cuts[b]:cuts[b+1]]``) with a random gap moved last."""
        n = len(cuts) - 1
        size = int(self.rng.integers(1, min(MAX_INFILL_BARS, n - 1) + 1))
        first = int(self.rng.integers(0, n - size + 1))
        a, b = cuts[first], cuts[first + size]
        tok = self.tokenizer
        return np.concatenate([body[:a], [tok.suffix_id], body[b:], tok.infill_ids(size), body[a:b]])

    def batch(self, batch_size: int) -> torch.Tensor:
        out = np.full((batch_size, self.seq_len), self.tokenizer.pad_id, dtype=np.int64)
        for row in range(batch_size):
            seq = self.sample_sequence()[: self.seq_len]
            out[row, : len(seq)] = seq
        return torch.from_numpy(out)

