"""Compose, then perform: the plan by which an audio model plays a tune the symbolic composer writes.

The small audio models perform a score (a MIDI ``melody``) well and invent melody poorly. So when a request
to an audio model that performs scores names musical controls (a key, a tempo, a meter, a form or a bar
count, as fields or in the text) and gives no melody, `Studio.generate` first has the composer write the
score with exactly those controls, then the audio model performs it with the text's instrument and sound.

This module only plans (no model runs here): what to ask the composer, and what to ask the performer
once the score exists. ``Conditioning.compose``: None (default) composes when controls are named,
False never, True always (and raises when it cannot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cadenza.conditioning import Capability, Conditioning
from cadenza.errors import InvalidConditioning, UnsupportedConditioning
from cadenza.music.score_roll import SCORE_TAIL_S

DEFAULT_COMPOSER = "remi-folk-small"
#: Tempo given to the composer when the request names none (quarter notes per minute).
DEFAULT_TEMPO_BPM = 110.0
#: The fields the composer takes over from a request (the performer gets text, melody and duration).
MUSICAL_FIELDS = ("key", "tempo_bpm", "time_signature", "bars", "form", "style")


@dataclass(frozen=True)
class ComposePlan:
    """``composer``: the symbolic model; ``request``: what it is asked (exact controls); ``why``: the
    controls that made the plan (for the sidecar); ``max_s``: the longest the performance may last."""

    composer: str
    request: Conditioning
    why: tuple[str, ...]
    max_s: float | None


def named_controls(conditioning: Conditioning) -> tuple[dict[str, object], bool]:
    """``(controls, text_musical)``: the musical controls a request names, as fields or in its text
    (``parse_text``), and whether the composer can read the text (it names something it knows)."""
    from cadenza.tokenizers.text_controls import parse_text

    named: dict[str, object] = {name: getattr(conditioning, name) for name in MUSICAL_FIELDS
                                if getattr(conditioning, name) is not None}
    controls = None
    if conditioning.text:
        try:
            controls = parse_text(conditioning.text)
        except InvalidConditioning:  # nothing the composer knows in the text (or a contradiction)
            controls = None
        if controls is not None:
            for name in ("key", "tempo_bpm", "time_signature", "bars", "form"):
                value = getattr(controls, name)
                if value is not None:
                    named.setdefault(name, value)
    return named, controls is not None


def bar_seconds(time_signature: str | None, tempo_bpm: float) -> float:
    """Seconds per bar at ``tempo_bpm`` quarter notes per minute (4/4 when no meter is named)."""
    numerator, denominator = (int(v) for v in (time_signature or "4/4").split("/"))
    return numerator * (4.0 / denominator) * 60.0 / tempo_bpm


def plan_compose(conditioning: Conditioning, capabilities: frozenset[Capability], family: str, *,
                 default_s: float, max_s: float | None, composer: str | None) -> ComposePlan | None:
    """The composer's request for an audio request, or None to generate directly.

    ``default_s`` / ``max_s``: the performer's default and longest duration; ``composer``: the installed
    symbolic model to use (None: none installed).
    """
    wanted = conditioning.compose
    if wanted is False:
        return None
    performs = family != "symbolic" and Capability.MELODY_MIDI in capabilities
    why, text_musical = named_controls(conditioning)
    blockers = []
    if not performs:
        blockers.append("this model does not perform a MIDI melody")
    if conditioning.melody is not None:
        blockers.append("a melody is given")
    if conditioning.prompt is not None:
        blockers.append("an audio prompt is continued")
    if composer is None:
        blockers.append(f"no composer is installed ({DEFAULT_COMPOSER})")
    if blockers:
        if wanted:
            raise UnsupportedConditioning(f"cannot compose, then perform: {'; '.join(blockers)}")
        return None
    if not why and not wanted:
        return None
    tempo = float(why.get("tempo_bpm") or DEFAULT_TEMPO_BPM)
    budget = conditioning.duration_s if conditioning.duration_s is not None else default_s
    if max_s is not None:
        budget = min(budget, max_s)
    bars = conditioning.bars
    if "bars" not in why and "form" not in why:  # as many bars as the duration holds
        bars = max(1, math.floor((budget - SCORE_TAIL_S) / bar_seconds(why.get("time_signature"), tempo) + 1e-6))
    request = Conditioning(text=conditioning.text if text_musical else None, style=conditioning.style,
                           key=conditioning.key, tempo_bpm=conditioning.tempo_bpm or tempo,
                           time_signature=conditioning.time_signature, bars=bars, form=conditioning.form,
                           instruments=conditioning.instruments)
    return ComposePlan(composer=composer, request=request, why=tuple(sorted(why)), max_s=max_s)


def performance(conditioning: Conditioning, score_path: str, score_seconds: float, max_s: float | None) -> Conditioning:
    """The performer's request: the text and sound fields, the composed score as its melody, and a
    duration that holds the score (the one asked for, if any)."""
    if max_s is not None and score_seconds > max_s + 0.05:
        raise InvalidConditioning(f"the composed score lasts {score_seconds:.1f} s but this model makes at most "
                                  f"{max_s:g} s: ask for fewer bars or a faster tempo")
    duration = conditioning.duration_s
    if duration is None:
        duration = score_seconds + SCORE_TAIL_S
        if max_s is not None:
            duration = min(duration, max_s)
    kept = {name: None for name in MUSICAL_FIELDS}
    return replace(conditioning, **kept, instruments=(), melody=score_path, duration_s=duration, compose=None)


def octave_shift(pitches, low: int, high: int) -> int:
    """Semitones (a multiple of 12, within three octaves) that put the most of ``pitches`` inside
    ``[low, high]``; of equal ones the smallest move, then the lower."""
    import numpy as np

    pitches = np.asarray(pitches)
    if pitches.size == 0:
        return 0
    costs = [(int(((pitches + 12 * k < low) | (pitches + 12 * k > high)).sum()), abs(k), k) for k in range(-3, 4)]
    return 12 * min(costs)[2]


def in_register(score, text: str | None):
    """A composed score (`MidiOutput`) moved by whole octaves into the range of the solo instrument the
    ``text`` names, as the training clips place every solo (`cadenza.data.audio_corpus.SOLO_INSTRUMENTS`):
    a tune the composer wrote around the treble staff goes down an octave or two for a cello. Unchanged
    when the text names no such instrument or the tune already fits; the provenance notes record the move
    (``register_shift``, semitones)."""
    from dataclasses import replace as replaced

    import numpy as np

    from cadenza.data.audio_corpus import SOLO_INSTRUMENTS
    from cadenza.data.sketch import sketch_programs

    name, _ = sketch_programs(text)
    if name not in SOLO_INSTRUMENTS:
        return score
    pitches = [t.notes.numpy()["pitch"] for t in score.score.tracks if not t.is_drum and len(t.notes)]
    shift = octave_shift(np.concatenate(pitches) if pitches else [], *SOLO_INSTRUMENTS[name][1])
    if shift == 0:
        return score
    provenance = replaced(score.provenance, notes={**score.provenance.notes, "register_shift": shift})
    return replaced(score, score=score.score.shift_pitch(shift), provenance=provenance)
