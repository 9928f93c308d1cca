"""What to make (`Conditioning`) and how to sample it (`Sampling`): frozen, validated, passed per call.

`Conditioning` holds music-level fields, not model inputs. Each generator declares the `Capability` set
it honours; `require_supported` raises `UnsupportedConditioning` for any set field outside it, so a
request is never silently half-ignored.
"""

from __future__ import annotations

import enum
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cadenza.errors import CorruptInput, InvalidConditioning, UnsupportedConditioning
from cadenza.music.theory import parse_key, parse_time_signature

MIDI_SUFFIXES = (".mid", ".midi")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".aac", ".mp4")


class Capability(str, enum.Enum):
    """A conditioning field a model can honour. ``prompt`` and ``melody`` split by input kind."""

    TEXT = "text"
    NEGATIVE_TEXT = "negative_text"
    TAGS = "tags"
    STYLE = "style"
    TEMPO = "tempo_bpm"
    KEY = "key"
    TIME_SIGNATURE = "time_signature"
    BARS = "bars"
    DURATION = "duration_s"
    INSTRUMENTS = "instruments"
    CHORDS = "chords"
    PROMPT_MIDI = "prompt_midi"
    PROMPT_AUDIO = "prompt_audio"
    MELODY_MIDI = "melody_midi"
    MELODY_AUDIO = "melody_audio"
    SOURCE_AUDIO = "source_audio"
    FORM = "form"
    REGENERATE = "regenerate"


def _file_kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return "midi"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    raise InvalidConditioning(f"{path}: unknown file type {suffix!r}; use MIDI ({', '.join(MIDI_SUFFIXES)}) "
                              f"or audio ({', '.join(AUDIO_SUFFIXES)})")


def _check_input_file(name: str, path: str) -> None:
    """The file exists, is not empty, and parses as what its suffix says."""
    if not os.path.isfile(path):
        raise InvalidConditioning(f"{name}: no such file {path!r}")
    if os.path.getsize(path) == 0:
        raise CorruptInput(f"{name}: {path!r} is empty")
    if _file_kind(path) == "midi":
        from cadenza.fileio.midi import load_midi
        load_midi(path)
    else:
        from cadenza.fileio.audio import audio_frames

        try:
            frames = audio_frames(path)
        except CorruptInput as exc:
            raise CorruptInput(f"{name}: {exc}") from exc
        if frames == 0:
            raise CorruptInput(f"{name}: {path!r} holds no audio samples")


@dataclass(frozen=True)
class Conditioning:
    """What the music should be. Every field is optional; a model refuses fields it cannot honour.

    Units: ``tempo_bpm`` quarter notes per minute (20-300), ``duration_s`` seconds (0 < d <= 600),
    ``bars`` 1-256. ``key`` like 'D major' or 'F# minor'; ``time_signature`` like '6/8'.
    ``prompt`` is a MIDI or audio file to continue; ``melody`` a MIDI or audio file to follow;
    ``source_audio`` the recording for timbre transfer.
    ``form`` a plan of lettered sections such as 'AABB', 'A8 B8' or "A A' B B'" (see ``cadenza.music.form``);
    ``regenerate`` ``(first, last)``: bars of the MIDI ``prompt`` to write anew, 1-based and inclusive,
    keeping every other note as it is.
    ``compose``: for audio models that perform a score (``cadenza.compose``): None composes the score
    first when key, tempo, meter, form or bars are named; False never; True always.
    """

    text: str | None = None
    negative_text: str | None = None
    tags: tuple[str, ...] = ()
    style: str | None = None
    tempo_bpm: float | None = None
    key: str | None = None
    time_signature: str | None = None
    bars: int | None = None
    duration_s: float | None = None
    instruments: tuple[str, ...] = ()
    chords: tuple[str, ...] = ()
    prompt: str | None = None
    melody: str | None = None
    source_audio: str | None = None
    form: str | None = None
    regenerate: tuple[int, int] | None = None
    compose: bool | None = None

    def __post_init__(self) -> None:
        if self.compose is not None and not isinstance(self.compose, bool):
            raise InvalidConditioning(f"compose must be true, false or unset, got {self.compose!r}")
        for name in ("tags", "instruments", "chords"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) for v in value))
        for name in ("prompt", "melody", "source_audio"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.fspath(value))
        if self.text is not None and not self.text.strip():
            raise InvalidConditioning("text is empty: describe the music or leave text unset")
        if self.tempo_bpm is not None:
            if not isinstance(self.tempo_bpm, (int, float)) or not math.isfinite(self.tempo_bpm) or not 20 <= self.tempo_bpm <= 300:
                raise InvalidConditioning(f"tempo {self.tempo_bpm!r} BPM is outside 20-300")
        if self.key is not None:
            object.__setattr__(self, "key", parse_key(self.key).name)
        if self.time_signature is not None:
            object.__setattr__(self, "time_signature", parse_time_signature(self.time_signature).name)
        if self.bars is not None:
            if isinstance(self.bars, bool) or not isinstance(self.bars, int) or not 1 <= self.bars <= 256:
                raise InvalidConditioning(f"bars {self.bars!r} must be a whole number from 1 to 256")
        if self.duration_s is not None:
            if not isinstance(self.duration_s, (int, float)) or not math.isfinite(self.duration_s) or not 0 < self.duration_s <= 600:
                raise InvalidConditioning(f"duration {self.duration_s!r} s must be more than 0 and at most 600 seconds")
        if self.form is not None:
            from cadenza.music.form import parse_form

            parse_form(self.form, self.bars)  # raises on a plan that cannot be read or does not add up
        if self.regenerate is not None:
            span = self.regenerate
            if (isinstance(span, str) or len(span) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in span)
                    or not 1 <= span[0] <= span[1]):
                raise InvalidConditioning(f"regenerate {span!r} must be (first, last) bar numbers, 1 <= first <= last")
            object.__setattr__(self, "regenerate", (int(span[0]), int(span[1])))
            if self.prompt is None or _file_kind(self.prompt) != "midi":
                raise InvalidConditioning("regenerate rewrites bars of a MIDI file: set prompt to one")
        for name in ("prompt", "melody", "source_audio"):
            value = getattr(self, name)
            if value is not None:
                _check_input_file(name, value)
        if self.source_audio is not None and _file_kind(self.source_audio) != "audio":
            raise InvalidConditioning(f"source_audio must be an audio file, got {self.source_audio!r}")

    def capabilities_used(self) -> set[Capability]:
        """The capabilities a model needs to honour every field that is set."""
        used: set[Capability] = set()
        simple = {"text": Capability.TEXT, "negative_text": Capability.NEGATIVE_TEXT, "tags": Capability.TAGS,
                  "style": Capability.STYLE, "tempo_bpm": Capability.TEMPO, "key": Capability.KEY,
                  "time_signature": Capability.TIME_SIGNATURE, "bars": Capability.BARS,
                  "duration_s": Capability.DURATION, "instruments": Capability.INSTRUMENTS,
                  "chords": Capability.CHORDS, "source_audio": Capability.SOURCE_AUDIO, "form": Capability.FORM,
                  "regenerate": Capability.REGENERATE}
        for name, cap in simple.items():
            if getattr(self, name) not in (None, ()):
                used.add(cap)
        if self.prompt is not None:
            used.add(Capability.PROMPT_MIDI if _file_kind(self.prompt) == "midi" else Capability.PROMPT_AUDIO)
        if self.melody is not None:
            used.add(Capability.MELODY_MIDI if _file_kind(self.melody) == "midi" else Capability.MELODY_AUDIO)
        return used

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v not in (None, ())}

    @classmethod
    def from_dict(cls, data: dict) -> Conditioning:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidConditioning(f"unknown conditioning fields: {', '.join(sorted(unknown))}")
        return cls(**data)


def require_supported(conditioning: Conditioning, capabilities: frozenset[Capability], model: str) -> None:
    """Raise UnsupportedConditioning naming every set field ``model`` cannot honour."""
    missing = sorted(c.value for c in conditioning.capabilities_used() - set(capabilities))
    if missing:
        supported = ", ".join(sorted(c.value for c in capabilities)) or "nothing"
        raise UnsupportedConditioning(f"model {model!r} cannot honour {', '.join(missing)}; it supports: {supported}")


def require_sampling_supported(sampling: "Sampling", knobs: frozenset[str], model: str) -> None:
    """Raise UnsupportedConditioning naming every changed sampling field ``model`` does not use."""
    unused = sorted(sampling.knobs_set() - set(knobs))
    if unused:
        used = ", ".join(sorted(knobs)) or "only seed and num_samples"
        raise UnsupportedConditioning(f"model {model!r} does not use {', '.join(unused)}; its sampling settings are: {used}")


@dataclass(frozen=True)
class Sampling:
    """How to sample, per call. ``seed=None`` draws a seed, which is recorded in the provenance.

    ``temperature`` 0 means greedy; ``top_k`` 0 and ``top_p`` 1 disable those filters; ``cfg_scale`` is
    classifier-free guidance (1 = off); ``steps`` and ``scheduler`` are for diffusion models.
    ``strength`` (audio models): how far the result may move from what it starts from, 0 < strength <= 1:
    a diffusion model's audio ``prompt`` (1 = only its length is kept), or the sketch of a ``melody`` a
    model performs (`cadenza.data.sketch`; 1 = the model's own performance from the score alone).
    ``key_bias`` (symbolic models) adds ``key_bias * log(profile / max)`` of the key's Krumhansl-Kessler
    profile to pitch logits: out-of-scale pitches lose ~0.9 * key_bias, the tonic nothing
    (None = the model's default, 0 = off: the key is then held by conditioning alone; 20 nearly forbids them).
    """

    seed: int | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    cfg_scale: float = 1.0
    steps: int | None = None
    scheduler: str | None = None
    num_samples: int = 1
    max_tokens: int | None = None
    key_bias: float | None = None
    strength: float | None = None

    def __post_init__(self) -> None:
        checks = [
            ("seed", self.seed is None or (isinstance(self.seed, int) and 0 <= self.seed < 2**63), "seed must be a whole number >= 0"),
            ("temperature", _finite(self.temperature) and 0 <= self.temperature <= 5, "temperature must be between 0 and 5"),
            ("top_k", isinstance(self.top_k, int) and self.top_k >= 0, "top_k must be a whole number >= 0 (0 = off)"),
            ("top_p", _finite(self.top_p) and 0 < self.top_p <= 1, "top_p must be in (0, 1] (1 = off)"),
            ("repetition_penalty", _finite(self.repetition_penalty) and 0.5 <= self.repetition_penalty <= 3,
             "repetition_penalty must be in [0.5, 3]"),
            ("cfg_scale", _finite(self.cfg_scale) and 0 <= self.cfg_scale <= 30, "cfg_scale must be in [0, 30]"),
            ("steps", self.steps is None or (isinstance(self.steps, int) and 1 <= self.steps <= 1000), "steps must be 1-1000"),
            ("num_samples", isinstance(self.num_samples, int) and 1 <= self.num_samples <= 64, "num_samples must be 1-64"),
            ("key_bias", self.key_bias is None or (_finite(self.key_bias) and 0 <= self.key_bias <= 20),
             "key_bias must be in [0, 20] (0 = off)"),
            ("strength", self.strength is None or (_finite(self.strength) and 0 < self.strength <= 1),
             "strength must be in (0, 1]"),
            ("scheduler", self.scheduler is None or (isinstance(self.scheduler, str) and self.scheduler.strip() != ""),
             "scheduler must be a scheduler name"),
            ("max_tokens", self.max_tokens is None or (isinstance(self.max_tokens, int) and 1 <= self.max_tokens <= 100_000),
             "max_tokens must be 1-100000"),
        ]
        for name, ok, message in checks:
            if not ok:
                raise InvalidConditioning(f"{message} (got {getattr(self, name)!r})")

    def knobs_set(self) -> set[str]:
        """The sampling fields changed from their defaults that a model must honour (``seed`` and
        ``num_samples`` are honoured by every model)."""
        defaults = Sampling()
        return {f.name for f in fields(self)
                if f.name not in ("seed", "num_samples") and getattr(self, f.name) != getattr(defaults, f.name)}

    def with_seed(self, seed: int) -> Sampling:
        return Sampling(**{**asdict(self), "seed": seed})

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


__all__ = ["Capability", "Conditioning", "Sampling", "require_sampling_supported", "require_supported"]
