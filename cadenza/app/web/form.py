"""Widget values -> `Conditioning` + `Sampling` for one model: plain Python, no Gradio.

Only the widgets the chosen model shows are read (see ``controls``), so a value left in a hidden
widget from another model never reaches a request. Empty widgets mean "unset" (the model decides);
a sampling widget at its default maps to the `Sampling` default, which every model accepts.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from cadenza import Conditioning, InvalidConditioning, ModelInfo, Sampling
from cadenza.app.web.controls import (AUDIO_TYPES, MIDI_TYPES, SAMPLING_WIDGETS, can_regenerate, prompt_file_types,
                                      visible_widgets)
from cadenza.app.web.uploads import UploadChecker

_LABELS = {"tempo_bpm": "tempo", "duration_s": "duration", "num_samples": "samples", "top_k": "top-k",
           "top_p": "top-p", "cfg_scale": "guidance (cfg)", "key_bias": "key bias", "max_tokens": "max tokens"}


def conditioning_from_form(info: ModelInfo, form: Mapping[str, Any], uploads: UploadChecker) -> Conditioning:
    """The `Conditioning` the visible widgets of ``info``'s page describe.

    ``form`` maps widget names (``controls.CONDITIONING_WIDGETS``) to widget values: strings, numbers,
    lists (instruments), upload paths or None. Upload paths are checked by ``uploads`` before the
    `Conditioning` parses them.

    Raises:
        InvalidConditioning / CorruptInput: a value or an uploaded file that cannot be used.
    """
    shown = visible_widgets(info.capabilities, info.sampling)

    def get(name: str) -> Any:
        return form.get(name) if name in shown else None

    melody_midi, melody_audio = get("melody_midi"), get("melody_audio")
    if _text(melody_midi) and _text(melody_audio):
        raise InvalidConditioning("give one melody: a MIDI file or a recording, not both")
    melody = None
    if _text(melody_midi):
        melody = uploads.check(melody_midi, "melody", MIDI_TYPES)
    elif _text(melody_audio):
        melody = uploads.check(melody_audio, "melody", AUDIO_TYPES)
    prompt = get("prompt")
    source = get("source_audio")
    return Conditioning(
        text=_text(get("text")), negative_text=_text(get("negative_text")), tags=_items(get("tags")),
        style=_text(get("style")), key=_text(get("key")), time_signature=_text(get("time_signature")),
        tempo_bpm=_number(get("tempo_bpm"), "tempo_bpm"), bars=_whole(get("bars"), "bars"),
        duration_s=_number(get("duration_s"), "duration_s"), instruments=_items(get("instruments")),
        chords=_items(get("chords"), split=r"[\s,|]+"), form=_text(get("form")),
        prompt=uploads.check(prompt, "prompt", prompt_file_types(info.capabilities)) if _text(prompt) else None,
        melody=melody,
        source_audio=uploads.check(source, "source audio", AUDIO_TYPES) if _text(source) else None)


def regenerate_conditioning(info: ModelInfo, source: str, span: Any, uploads: UploadChecker) -> Conditioning:
    """The `Conditioning` that writes bars ``span`` (the "Regenerate bars" box: '5-8', '5 to 8' or '5') of
    the MIDI result ``source`` anew with ``info``'s model, keeping every other note. ``source`` must be a
    file the app wrote (inside ``uploads``' roots, which hold the app's workspace).

    Raises:
        InvalidConditioning: ``info`` cannot regenerate bars, the span cannot be read, or the file is gone.
    """
    if not can_regenerate(info.capabilities, info.output):
        raise InvalidConditioning(f"{info.name} cannot regenerate bars; generate with a model that can")
    return Conditioning(prompt=uploads.check(source, "result", MIDI_TYPES), regenerate=bar_range(span))


def bar_range(value: Any) -> tuple[int, int]:
    """``'5-8'`` (or with an en dash, ``'5 to 8'``, ``'5..8'``) -> (5, 8); ``'5'`` -> (5, 5). Bars count from 1."""
    text = _text(value)
    if text is None:
        raise InvalidConditioning("say which bars to write anew, e.g. 5-8")
    match = re.fullmatch(r"(\d+)\s*(?:(?:-|\u2013|\u2014|\.\.|to)\s*(\d+))?", text, flags=re.IGNORECASE)
    if not match:
        raise InvalidConditioning(f"bars {text!r}: write the first and last bar, e.g. 5-8")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if not 1 <= first <= last:
        raise InvalidConditioning(f"bars {text!r}: the first bar is 1 or more and not after the last")
    return first, last


def sampling_from_form(info: ModelInfo, form: Mapping[str, Any]) -> Sampling:
    """The `Sampling` for ``info``: seed and samples always; each other field only where the model
    lists it in ``info.sampling`` and its widget is not empty; everything else stays at its default."""
    hints = typing.get_type_hints(Sampling)
    samples = _whole(form.get("num_samples"), "num_samples")
    values: dict[str, Any] = {"seed": _whole(form.get("seed"), "seed"),
                              "num_samples": 1 if samples is None else samples}
    for name in SAMPLING_WIDGETS:
        if name not in info.sampling:
            continue
        value = form.get(name)
        kind = _base_type(hints[name])
        if kind is str:
            value = _text(value)
        elif kind is int:
            value = _whole(value, name)
        else:
            value = _number(value, name)
        if value is not None:
            values[name] = value
    return Sampling(**values)


def _base_type(hint: Any) -> type:
    """``int | None`` -> int; ``float`` -> float."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _items(value: Any, split: str = r"\s*,\s*") -> tuple[str, ...]:
    """A list widget's values, or a comma-separated text, as a tuple of non-empty strings."""
    if value is None:
        return ()
    parts = value if isinstance(value, (list, tuple)) else re.split(split, str(value))
    return tuple(p.strip() for p in (str(p) for p in parts) if p.strip())


def _number(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidConditioning(f"{_LABELS.get(name, name)} must be a number, got {value!r}") from None
    if math.isnan(number):
        return None
    return number


def _whole(value: Any, name: str) -> int | None:
    number = _number(value, name)
    if number is None:
        return None
    if not math.isfinite(number) or number != int(number):
        raise InvalidConditioning(f"{_LABELS.get(name, name)} must be a whole number, got {value!r}")
    return int(number)

