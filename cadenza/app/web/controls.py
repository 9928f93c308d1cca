"""Which widget shows for which model: one table from `Capability` values and `Sampling` fields to
widget names, read by the page (visibility) and by ``form`` (what a widget means).

The page is driven only by a model's ``ModelInfo.capabilities`` and ``ModelInfo.sampling`` lists, so a
new generator appears in the studio without any change here; a new `Capability` or `Sampling` field
needs one entry in the tables below (a test fails until it has one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

from cadenza import Capability, Sampling
from cadenza.conditioning import AUDIO_SUFFIXES, MIDI_SUFFIXES

# Conditioning widget name -> the capabilities that make it visible (any of them).
CONDITIONING_WIDGETS: dict[str, tuple[Capability, ...]] = {
    "text": (Capability.TEXT,),
    "negative_text": (Capability.NEGATIVE_TEXT,),
    "tags": (Capability.TAGS,),
    "style": (Capability.STYLE,),
    "key": (Capability.KEY,),
    "tempo_bpm": (Capability.TEMPO,),
    "time_signature": (Capability.TIME_SIGNATURE,),
    "bars": (Capability.BARS,),
    "duration_s": (Capability.DURATION,),
    "instruments": (Capability.INSTRUMENTS,),
    "chords": (Capability.CHORDS,),
    "prompt": (Capability.PROMPT_MIDI, Capability.PROMPT_AUDIO),
    "melody_midi": (Capability.MELODY_MIDI,),
    "melody_audio": (Capability.MELODY_AUDIO,),
    "source_audio": (Capability.SOURCE_AUDIO,),
    "form": (Capability.FORM,),
    "regenerate": (Capability.REGENERATE,),
}

# Conditioning widgets that sit on each result rather than in the form: "Regenerate bars" rewrites bars of
# that result, so it shows on a MIDI result whose model has the capability (see ``can_regenerate``).
RESULT_WIDGETS: tuple[str, ...] = ("regenerate",)

# Sampling fields every model honours; they are always shown.
UNIVERSAL_SAMPLING = ("seed", "num_samples")
# The other Sampling fields, each its own widget shown only for models that list it in ``sampling``.
SAMPLING_WIDGETS: tuple[str, ...] = tuple(f.name for f in fields(Sampling) if f.name not in UNIVERSAL_SAMPLING)

# Dropdowns whose suggestions come from the model's family (``ModelInfo.choices``) -> the label of the
# empty value ("" leaves the setting to the model). Other values may be typed; the model checks them.
FAMILY_CHOICE_WIDGETS: dict[str, str] = {"style": "any", "scheduler": "model's default"}

# Suffixes an upload widget accepts, by the capabilities it serves.
MIDI_TYPES = MIDI_SUFFIXES
AUDIO_TYPES = AUDIO_SUFFIXES


def visible_widgets(capabilities: tuple[str, ...] | frozenset[str],
                    sampling: tuple[str, ...] | frozenset[str]) -> set[str]:
    """The conditioning and sampling widget names to show for a model with these lists."""
    caps = set(capabilities)
    shown = {name for name, needs in CONDITIONING_WIDGETS.items() if any(c.value in caps for c in needs)}
    shown |= {name for name in SAMPLING_WIDGETS if name in set(sampling)}
    return shown | set(UNIVERSAL_SAMPLING)


def can_regenerate(capabilities: tuple[str, ...] | frozenset[str], output: str) -> bool:
    """Whether a result of a model with these capabilities and output kind ('midi' or 'audio') offers
    "Regenerate bars" (the bars of a MIDI file are written anew by the model that wrote it)."""
    return output == "midi" and "regenerate" in visible_widgets(capabilities, ())


def prompt_file_types(capabilities: tuple[str, ...] | frozenset[str]) -> list[str]:
    """Suffixes the prompt upload accepts for a model: MIDI, audio, or both."""
    caps = set(capabilities)
    types: list[str] = []
    if Capability.PROMPT_MIDI.value in caps:
        types += MIDI_TYPES
    if Capability.PROMPT_AUDIO.value in caps:
        types += AUDIO_TYPES
    return types


def widget_choices(name: str, choices: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """``(label, value)`` pairs of the dropdown ``name`` (a ``FAMILY_CHOICE_WIDGETS`` key) for a model whose
    family suggests ``choices``: the empty value first, then the family's names."""
    return [(FAMILY_CHOICE_WIDGETS[name], "")] + [(c, c) for c in choices.get(name, ())]
