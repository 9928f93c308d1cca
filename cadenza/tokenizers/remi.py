"""REMI tokens (miditok) plus Cadenza's control tokens, saved as one ``tokenizer.json``.

A sequence the symbolic model reads and writes::

    BOS  Style_irish  Key_D_major  Meter_6/8  Bars_16  | Bar TimeSig_6/8 Position_0 Pitch_62 Duration_1.0.12 ... | EOS
         '------------- control prefix --------------'   '------------- REMI body (miditok) ---------------'

All tracks of a score are merged into one stream (the corpus is single-instrument, program 0), so
instruments are honoured by assigning programs to the decoded track, not by tokens. Tempo is not a
token: the corpus has almost no real tempo marks (most pieces sit at the 120 BPM default), so the
requested tempo is written exactly into the output instead of being guessed by the model.
Control-token ids come after miditok's ids, so miditok's own encode/decode stay untouched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic
from miditok import REMI, TokenizerConfig

from cadenza.errors import CheckpointError, InvalidConditioning
from cadenza.fileio import atomic_write_text
from cadenza.music.theory import ALL_KEYS, Key, TimeSignature
from cadenza.tokenizers.styles import STYLES

MAX_BARS_TOKEN = 64
# Fill-in-the-middle sentinels (appended last, so a vocabulary without them is a prefix of one with them).
# An infilling sequence is  controls prefix-bars Infill_Suffix suffix-bars Infill_Middle Bars_M middle-bars EOS:
# the model reads what comes before and after the gap, then writes the gap's M bars.
INFILL_TOKENS = ("Infill_Suffix", "Infill_Middle")

DEFAULT_MIDITOK_CONFIG = dict(
    pitch_range=(21, 109),
    beat_res={(0, 4): 12, (4, 12): 4},  # 12 per beat keeps 16ths (3) and triplet 8ths (4)
    use_velocities=False,  # the corpus has constant velocities: a token per note that says nothing
    use_time_signatures=True,
    use_tempos=False,
    use_programs=False,
    time_signature_range={8: [3, 6, 9, 12], 4: [1, 2, 3, 4, 5, 6], 2: [1, 2, 3, 4]},
    special_tokens=["PAD", "BOS", "EOS"],
)


def key_token(key: Key) -> str:
    return f"Key_{key.name.replace(' ', '_')}"


@dataclass(frozen=True)
class ControlPrefix:
    """What the model is told before it writes: style, key, meter and the number of bars."""

    style: str
    key: Key
    meter: TimeSignature
    bars: int


class RemiTokenizer:
    """miditok REMI with Cadenza's control tokens appended to its vocabulary."""

    def __init__(self, miditok_config: dict | None = None, infill: bool = True) -> None:
        """``infill``: add the fill-in-the-middle sentinels (tokenizers saved before they existed load without)."""
        params = dict(DEFAULT_MIDITOK_CONFIG if miditok_config is None else miditok_config)
        self.params, self.infill = params, infill
        self.remi = REMI(TokenizerConfig(**params))
        base = [None] * len(self.remi.vocab)
        for token, idx in self.remi.vocab.items():
            base[idx] = token
        controls = [f"Style_{s}" for s in STYLES] + [key_token(k) for k in ALL_KEYS]
        controls += [f"Meter_{t.split('_', 1)[1]}" for t in base if t.startswith("TimeSig_")]
        controls += [f"Bars_{n}" for n in range(1, MAX_BARS_TOKEN + 1)]
        if infill:
            controls += list(INFILL_TOKENS)
        self.id_to_token: list[str] = base + controls
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(self.id_to_token)}
        self.base_vocab_size = len(base)
        self.pad_id, self.bos_id, self.eos_id = self.vocab["PAD_None"], self.vocab["BOS_None"], self.vocab["EOS_None"]
        self.bar_id = self.vocab["Bar_None"]
        self.pitch_of_id = np.full(len(self.id_to_token), -1, dtype=np.int64)
        for token, idx in self.vocab.items():
            if token.startswith("Pitch_"):
                self.pitch_of_id[idx] = int(token.split("_")[1])
        self.id_of_pitch = {int(p): i for i, p in enumerate(self.pitch_of_id) if p >= 0}
        self.suffix_id = self.vocab.get(INFILL_TOKENS[0], -1)
        self.middle_id = self.vocab.get(INFILL_TOKENS[1], -1)

    # ---- vocabulary ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.id_to_token)

    def ids_of_type(self, prefix: str) -> list[int]:
        """Ids of every token whose name starts with ``prefix + '_'`` (e.g. 'Pitch', 'Position')."""
        return [i for i, t in enumerate(self.id_to_token) if t.startswith(prefix + "_")]

    def value_of(self, token_id: int) -> str:
        return self.id_to_token[token_id].split("_", 1)[1]

    def meters(self) -> list[str]:
        return [self.value_of(i) for i in self.ids_of_type("Meter")]

    def positions_per_bar(self, meter: TimeSignature) -> int:
        """Number of Position tokens in one bar of ``meter`` (miditok counts per beat = 1/denominator)."""
        res = self.remi.config.beat_res
        ticks_per_beat = max(r for (lo, hi), r in res.items() if lo == 0)
        return meter.numerator * ticks_per_beat

    def control_ids(self, prefix: ControlPrefix) -> list[int]:
        """``[BOS, Style, Key, Meter, Bars]`` ids; raises InvalidConditioning for values not in the vocabulary."""
        names = ["BOS_None", f"Style_{prefix.style}", key_token(prefix.key), f"Meter_{prefix.meter.name}",
                 f"Bars_{min(prefix.bars, MAX_BARS_TOKEN)}"]
        missing = [n for n in names if n not in self.vocab]
        if missing:
            raise InvalidConditioning(f"this tokenizer has no token for {', '.join(missing)}; "
                                      f"meters: {', '.join(self.meters())}; styles: {', '.join(STYLES)}")
        return [self.vocab[n] for n in names]

    def infill_ids(self, bars: int) -> list[int]:
        """``[Infill_Middle, Bars_M]``: what opens the gap of ``bars`` bars after the suffix."""
        if not self.infill:
            raise InvalidConditioning("this model was trained without infilling tokens: it cannot regenerate bars")
        if not 1 <= bars <= MAX_BARS_TOKEN:
            raise InvalidConditioning(f"a gap of {bars} bars: choose 1..{MAX_BARS_TOKEN}")
        return [self.middle_id, self.vocab[f"Bars_{bars}"]]

    # ---- scores <-> ids -----------------------------------------------------------------------
    @staticmethod
    def merge_tracks(score: symusic.Score) -> symusic.Score:
        """One pitched track with every non-drum note of ``score`` (tempos and meters kept)."""
        merged = symusic.Score(score.ticks_per_quarter)
        merged.tempos = score.tempos.copy()
        merged.time_signatures = score.time_signatures.copy()
        track = symusic.Track(name="music", program=0, is_drum=False)
        for source in score.tracks:
            if not source.is_drum:
                track.notes.extend(source.notes.copy())
        track.notes.sort()
        merged.tracks.append(track)
        return merged

    def encode_body(self, score: symusic.Score) -> list[int]:
        """REMI ids of all non-drum notes of ``score`` merged into one stream (no controls, no BOS/EOS)."""
        merged = self.merge_tracks(score)
        if len(merged.tracks[0].notes) == 0:
            return []
        seqs = self.remi.encode(merged)
        seq = seqs[0] if isinstance(seqs, list) else seqs
        return list(seq.ids)

    def split_bars(self, body: list[int]) -> list[list[int]]:
        """Cut a REMI body into bars; each bar starts with its Bar token."""
        bars: list[list[int]] = []
        for idx in body:
            if idx == self.bar_id or not bars:
                bars.append([])
            bars[-1].append(idx)
        return bars

    def transpose(self, ids: np.ndarray, semitones: int) -> np.ndarray:
        """Shift every Pitch token of ``ids [N]`` by ``semitones``; raises ValueError if one leaves the range."""
        ids = np.asarray(ids)
        pitches = self.pitch_of_id[ids]
        is_pitch = pitches >= 0
        shifted = pitches[is_pitch] + semitones
        low, high = self.remi.config.pitch_range
        if shifted.size and (shifted.min() < low or shifted.max() >= high):
            raise ValueError("transposition leaves the pitch range")
        out = ids.copy()
        out[is_pitch] = [self.id_of_pitch[int(p)] for p in shifted]
        return out

    def decode_body(self, body: list[int]) -> symusic.Score:
        """A symusic Score from REMI ids; control, BOS, EOS and PAD ids are ignored."""
        keep = [int(i) for i in body if i < self.base_vocab_size and i not in (self.pad_id, self.bos_id, self.eos_id)]
        return self.remi.decode([keep])

    # ---- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"class": "RemiTokenizer", "miditok_class": "REMI", "miditok_params": _params_to_json(self.params),
                "infill": self.infill, "vocab": self.id_to_token}

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RemiTokenizer:
        """Rebuild from ``tokenizer.json`` and check the vocabulary is exactly the saved one."""
        try:
            data = json.loads(Path(path).read_text())
            if data.get("class") != "RemiTokenizer":
                raise CheckpointError(f"{path} is not a RemiTokenizer file (class={data.get('class')!r})")
            tokenizer = cls(_params_from_json(data["miditok_params"]), infill=bool(data.get("infill", False)))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"cannot read tokenizer {path}: {exc}") from exc
        if tokenizer.id_to_token != data["vocab"]:
            raise CheckpointError(f"{path}: vocabulary differs from what this Cadenza version builds from its config")
        return tokenizer


def _params_to_json(params: dict) -> dict:
    out = dict(params)
    out["pitch_range"] = list(params["pitch_range"])
    out["beat_res"] = [[lo, hi, res] for (lo, hi), res in params["beat_res"].items()]
    out["time_signature_range"] = {str(k): list(v) for k, v in params["time_signature_range"].items()}
    return out


def _params_from_json(data: dict) -> dict:
    out = dict(data)
    out["pitch_range"] = tuple(data["pitch_range"])
    out["beat_res"] = {(lo, hi): res for lo, hi, res in data["beat_res"]}
    out["time_signature_range"] = {int(k): list(v) for k, v in data["time_signature_range"].items()}
    return out
