"""Conditioning for audiocraft MusicGen checkpoints: text (T5 or LUT) and melody (chroma) -> LM states.

audiocraft keeps each conditioner's ``output_proj`` in the LM's state dict
(``condition_provider.conditioners.<name>.*``) and a fuser config that says whether a condition is
cross-attended (``cross``: MusicGen text models) or prepended to the token stream (``prepend``:
MusicGen-melody's chroma and text). ``AudiocraftConditioning`` rebuilds exactly that:

- ``t5``: transformers' ``T5EncoderModel`` + tokenizer loaded with ``local_files_only`` from the
  checkpoint directory (``t5/`` or ``<t5 name>/``) or the Hugging Face cache; missing files raise a
  ``CheckpointError`` naming the model and where to put it. Never downloads.
- ``lut``: audiocraft's own ``LUTConditioner`` (a lookup table; no files needed).
- ``chroma_stem``: chroma of the melody audio (``chroma.py``) -> ``output_proj``. audiocraft first
  removes drums and bass with demucs, which is not available offline here: the chroma is taken from the
  whole mix (cleanest with a melody rendered from MIDI, or a solo recording).

Null conditions follow audiocraft exactly (they are the unconditional half of CFG): text -> zero states;
melody -> the chroma of one silent sample tiled over the window, unmasked.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cadenza.errors import CheckpointError
from cadenza.generators.codec_lm.chroma import ChromaSettings, chroma, match_length

CONDITIONER_PREFIX = "condition_provider."
T5_DIMS = {"t5-small": 512, "t5-base": 768, "t5-large": 1024, "t5-3b": 1024, "t5-11b": 1024,
           "google/flan-t5-small": 512, "google/flan-t5-base": 768, "google/flan-t5-large": 1024,
           "google/flan-t5-xl": 2048, "google/flan-t5-xxl": 4096}


def _hf_repo_ids(name: str) -> list[str]:
    """Hub ids a T5 name may be cached under (the t5-* repos moved to google-t5/ on the hub)."""
    return [name, f"google-t5/{name}"] if "/" not in name else [name]


def find_t5(name: str, search: list[Path]) -> Path | str:
    """A local directory (or cached hub id) holding T5 ``name``; raise CheckpointError naming what is missing."""
    for root in search:
        for candidate in (root / "t5", root / name.replace("/", "--"), root / name.split("/")[-1]):
            if (candidate / "config.json").is_file():
                return candidate
    from huggingface_hub import try_to_load_from_cache

    for repo in _hf_repo_ids(name):
        hit = try_to_load_from_cache(repo, "config.json")
        if isinstance(hit, str):
            return Path(hit).parent
    places = ", ".join(str(p / "t5") for p in search)
    raise CheckpointError(
        f"this MusicGen checkpoint conditions on text with the T5 encoder {name!r}, whose files are not on this "
        f"machine: put a local copy of {name} (config.json, model.safetensors or pytorch_model.bin, spiece.model) "
        f"in {places or 'the checkpoint directory under t5/'}, or into the Hugging Face cache "
        f"(huggingface-cli download {_hf_repo_ids(name)[-1]}). Cadenza never downloads it implicitly.")


class T5Text(nn.Module):
    """audiocraft's ``T5Conditioner`` at inference: T5 states -> ``output_proj`` -> zero where masked."""

    def __init__(self, name: str, output_dim: int, location: Path | str) -> None:
        super().__init__()
        from transformers import AutoTokenizer, T5EncoderModel

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
            self.__dict__["t5"] = T5EncoderModel.from_pretrained(location, local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load the T5 encoder {name!r} from {location}: {exc}") from exc
        self.output_proj = nn.Linear(T5_DIMS.get(name, self.t5.config.d_model), output_dim)

    def forward(self, texts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        entries = [t if t is not None else "" for t in texts]
        inputs = self.tokenizer(entries, return_tensors="pt", padding=True)
        mask = inputs["attention_mask"]
        mask[[i for i, t in enumerate(entries) if t == ""], :] = 0
        device = self.output_proj.weight.device
        self.t5.to(device)
        with torch.no_grad():
            states = self.t5(input_ids=inputs["input_ids"].to(device), attention_mask=mask.to(device)).last_hidden_state
        states = self.output_proj(states.to(self.output_proj.weight))
        mask = mask.to(device)
        return states * mask[..., None], mask


class LUTText(nn.Module):
    """audiocraft's ``LUTConditioner`` with the ``noop`` tokenizer: the whole text hashes (sha256) into
    one of ``n_bins`` rows -> ``output_proj``. (The ``whitespace`` tokenizer needs a spaCy model.)"""

    def __init__(self, output_dim: int, args: dict) -> None:
        super().__init__()
        if args.get("tokenizer", "noop") != "noop":
            raise CheckpointError(f"LUT conditioner tokenizer {args.get('tokenizer')!r} is not supported (only 'noop')")
        self.n_bins = int(args["n_bins"])
        self.pad_idx = int(args.get("pad_idx", 0))
        self.embed = nn.Embedding(self.n_bins, int(args["dim"]))
        self.output_proj = nn.Linear(int(args["dim"]), output_dim)

    def forward(self, texts: list[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [self.pad_idx if t is None else int(hashlib.sha256(t.encode("utf-8")).hexdigest(), 16) % self.n_bins
               for t in texts]
        device = self.embed.weight.device
        mask = torch.tensor([[t is not None] for t in texts], dtype=torch.long, device=device)
        states = self.output_proj(self.embed(torch.tensor(ids, device=device)[:, None]))
        return states * mask[..., None], mask


class ChromaMelody(nn.Module):
    """audiocraft's ``ChromaStemConditioner`` at inference (without the demucs stem split)."""

    def __init__(self, output_dim: int, args: dict, sample_rate: int, duration: float) -> None:
        super().__init__()
        self.settings = ChromaSettings(sample_rate=int(args.get("sample_rate", sample_rate)),
                                       n_chroma=int(args.get("n_chroma", 12)),
                                       radix2_exp=int(args.get("radix2_exp", 12)), argmax=bool(args.get("argmax", True)))
        self.length = self.settings.n_frames(int(self.settings.sample_rate * duration))
        self.output_proj = nn.Linear(self.settings.n_chroma, output_dim)

    def forward(self, wavs: list[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """``wavs``: per row a mono ``[N]`` float tensor at ``settings.sample_rate`` or None (null)."""
        rows = []
        for wav in wavs:
            wav = torch.zeros(1) if wav is None else wav
            rows.append(match_length(chroma(wav[None].float(), self.settings), self.length))
        feats = torch.cat(rows).to(self.output_proj.weight)
        states = self.output_proj(feats)
        return states, torch.ones(states.shape[:2], dtype=torch.long, device=states.device)


@dataclass(frozen=True)
class ConditionInputs:
    """One decode batch of conditions: ``texts`` and ``melodies`` (mono ``[N]`` tensors at the chroma
    sample rate) per row; None is the null condition."""

    texts: list[str | None]
    melodies: list[torch.Tensor | None]


class AudiocraftConditioning(nn.Module):
    """Every conditioner of an audiocraft LM config, fused as its ``fuser`` says.

    ``forward(inputs) -> (cross [N, S, dim] | None, prefix [N, P, dim] | None)``; conditions keep
    audiocraft's order (text conditioners in config order, then waveform ones): cross states are
    concatenated in that order, prefixes each prepended in turn (so the last ends up first).
    """

    def __init__(self, cfg, dim: int, search: list[Path]) -> None:
        super().__init__()
        from omegaconf import OmegaConf

        conds = OmegaConf.to_container(cfg.get("conditioners") or {}, resolve=True)
        conds.pop("args", None)
        fuser = OmegaConf.to_container(cfg.fuser, resolve=True)
        for method in ("sum", "input_interpolate"):
            if fuser.get(method):
                raise CheckpointError(f"conditions fused by {method!r} ({fuser[method]}) are not supported")
        self.fuse = {name: method for method in ("cross", "prepend") for name in fuser.get(method, [])}
        self.text_names: list[str] = []
        self.wav_names: list[str] = []
        modules = {}
        duration = float(cfg.dataset.segment_duration)
        for name, spec in conds.items():
            kind = spec["model"]
            args = dict(spec.get(kind) or {})
            if kind == "t5":
                t5_name = args["name"]
                modules[name] = T5Text(t5_name, dim, find_t5(t5_name, search))
                self.text_names.append(name)
            elif kind == "lut":
                modules[name] = LUTText(dim, args)
                self.text_names.append(name)
            elif kind == "chroma_stem":
                modules[name] = ChromaMelody(dim, args, int(args.get("sample_rate", 32000)), duration)
                self.wav_names.append(name)
            else:
                raise CheckpointError(f"conditioner {name!r} of type {kind!r} is not supported "
                                      "(supported: t5, lut, chroma_stem)")
            if name not in self.fuse:
                raise CheckpointError(f"conditioner {name!r} is not fused by 'cross' or 'prepend' in the config")
        self.conditioners = nn.ModuleDict(modules)

    @property
    def melody_sample_rate(self) -> int | None:
        """Sample rate the chroma conditioner expects (None: no melody conditioning)."""
        return self.conditioners[self.wav_names[0]].settings.sample_rate if self.wav_names else None

    def forward(self, inputs: ConditionInputs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        cross, prefix = None, None
        for name in self.text_names + self.wav_names:
            values = inputs.texts if name in self.text_names else inputs.melodies
            states, _ = self.conditioners[name](values)
            if self.fuse[name] == "cross":
                cross = states if cross is None else torch.cat([cross, states], dim=1)
            else:
                prefix = states if prefix is None else torch.cat([states, prefix], dim=1)
        return cross, prefix


def conditioner_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``condition_provider.*`` entries of an audiocraft LM state without that prefix, as
    ``AudiocraftConditioning.conditioners``."""
    return {key[len(CONDITIONER_PREFIX):]: value for key, value in state.items() if key.startswith(CONDITIONER_PREFIX)}


def t5_search_dirs(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """Where a T5 encoder is looked for besides the Hugging Face cache."""
    return [Path(checkpoint_dir), Path(checkpoint_dir).parent]
