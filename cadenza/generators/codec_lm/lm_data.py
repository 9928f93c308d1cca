"""The codec LM's training set: every clip encoded once by the codec, every caption once by the text
encoder, cached as arrays (``<out>/<split>.npz``: ``codes [N, K, F] int16``, ``states [N, S, 384]
float16``, ``mask [N, S] bool``, ``captions``, and the notes each clip was rendered from, ragged:
``notes [M, 3] float32`` rows ``(onset_s, offset_s, pitch)`` with clip ``i``'s rows at
``note_index[i]:note_index[i + 1]``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cadenza.data.splits import SPLITS
from cadenza.errors import CorruptInput


@dataclass(frozen=True)
class LMSplit:
    codes: np.ndarray  # [N, K, F] int16
    states: np.ndarray  # [N, S, D] float16
    mask: np.ndarray  # [N, S] bool
    captions: list[str]
    notes: np.ndarray | None = None  # [M, 3] float32 (onset_s, offset_s, pitch); None: cache without scores
    note_index: np.ndarray | None = None  # [N + 1] int64

    def __len__(self) -> int:
        return len(self.codes)

    def clip_notes(self, row: int) -> np.ndarray:
        """``[n, 3]`` notes of clip ``row`` (seconds from the clip's start)."""
        if self.notes is None or self.note_index is None:
            raise CorruptInput("this codec LM cache holds no scores: run `cadenza train codec-lm --prepare` again")
        return self.notes[self.note_index[row]:self.note_index[row + 1]]


def encode_clips(data_dir: str | os.PathLike, codec, text_encoder, out_dir: str | os.PathLike,
                 batch: int = 16, log=print) -> dict:
    """Encode every split of ``data_dir/clips.jsonl`` into ``out_dir``; returns clip counts per split.
    ``meta.json`` records the codec's codebooks (``n_q``, ``card``) and rates."""
    import json

    from cadenza.data.audio_corpus import clip_notes, load_clip, read_clips, score_path_of
    from cadenza.fileio import atomic_path, atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    every = read_clips(data_dir)
    scored = all((Path(data_dir) / score_path_of(r.path)).is_file() for r in every)
    if not scored:
        log(f"{data_dir}: some clips have no score (.mid beside the audio): caching text only; rebuild the clips "
            "with `cadenza train audio-data` for a model that performs scores")
    atomic_write_text(out_dir / "meta.json", json.dumps({
        "n_q": int(codec.num_codebooks), "card": int(codec.cardinality), "frame_rate": float(codec.frame_rate),
        "sample_rate": int(codec.sample_rate), "data": str(data_dir)}, indent=1) + "\n")
    counts = {}
    for split in SPLITS:
        records = read_clips(data_dir, split)
        if not records:
            continue
        if any(r.sample_rate != codec.sample_rate for r in records):
            raise CorruptInput(f"{data_dir}: clips are not all at the codec's {codec.sample_rate} Hz")
        codes, states, masks = [], [], []
        with torch.inference_mode():
            for start in range(0, len(records), batch):
                chunk = records[start:start + batch]
                wav = torch.from_numpy(np.stack([load_clip(data_dir, r) for r in chunk]))
                codes.append(codec.encode(wav)[0].to(torch.int16).numpy())
                text = text_encoder([r.caption for r in chunk])
                states.append(text.states.half().numpy())
                masks.append(text.mask.numpy())
        width = max(s.shape[1] for s in states)
        states = np.concatenate([np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in states])
        masks = np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in masks])
        arrays = dict(codes=np.concatenate(codes), states=states, mask=masks, captions=np.array([r.caption for r in records]))
        if scored:
            notes = [clip_notes(data_dir, r).astype(np.float32) for r in records]
            arrays["notes"] = np.concatenate(notes).reshape(-1, 3)
            arrays["note_index"] = np.concatenate([[0], np.cumsum([len(n) for n in notes])]).astype(np.int64)
        with atomic_path(out_dir / f"{split}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        counts[split] = len(records)
        log(f"encoded {split}: {len(records)} clips")
    return counts


def load_split(cache_dir: str | os.PathLike, split: str) -> LMSplit:
    path = Path(cache_dir) / f"{split}.npz"
    if not path.is_file():
        raise CorruptInput(f"{path} is missing: run `cadenza train codec-lm --prepare` first")
    with np.load(path) as data:
        scored = "notes" in data.files
        return LMSplit(codes=data["codes"], states=data["states"], mask=data["mask"],
                       captions=[str(c) for c in data["captions"]], notes=data["notes"] if scored else None,
                       note_index=data["note_index"] if scored else None)
