"""Free text -> symbolic controls: a small, documented parser, not a language model.

It understands, anywhere in the text (case-insensitive):

- keys: "in D major", "in F# minor", "Bb major", "in e minor" (a bare "in D" means major);
- tempo: "120 bpm" (wins over a tempo word); words: "very slow" 56, "slow" 66, "moderate" 96, "lively" 132, "fast" 144, "very fast" 168;
- meter: "in 6/8", "3/4 time"; and forms that imply one: reel/hornpipe 4/4, jig 6/8, slip jig 9/8,
  waltz 3/4, polka/march 2/4;
- bars: "16 bars", "8 measures";
- style: irish (irish, reel, jig, hornpipe, polka), scottish (scottish, strathspey, air), chorale
  (chorale, hymn), string-quartet (quartet), renaissance (renaissance, madrigal, motet), folk-song
  (folk), classical (classical);
- instruments: any General MIDI name from ``cadenza.music.instruments`` ("for violin", "on flute");
- rhythm: "triplets", "swing" let the straight styles (jigs, reels, airs) use triplet rhythms too;
- form: a letter plan in capitals ("AABB", "AABA", "A8 B8") or a name ("two-part", "verse chorus", "rondo";
  see ``cadenza.music.form.FORM_NAMES``).

Two different values for one field ("in D major ... in A minor", "a reel in 3/4", "a waltz in 6/8") raise
InvalidConditioning; so does text in which nothing is recognised (it would otherwise be silently ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cadenza.errors import InvalidConditioning
from cadenza.music.form import FORM_NAMES
from cadenza.music.instruments import GM_PROGRAMS
from cadenza.music.theory import parse_key, parse_time_signature

TEMPO_WORDS = {"very slow": 56, "slow": 66, "moderate": 96, "lively": 132, "very fast": 168, "fast": 144}
# The meters a dance is written in (the first is the one it implies); a written meter outside them is a
# contradiction ("a reel in 3/4"), one inside them is the musician's choice ("a jig in 12/8").
FORM_METERS = {"slip jig": ("9/8",), "jig": ("6/8", "12/8"), "reel": ("4/4", "2/2"), "hornpipe": ("4/4", "2/4"),
               "waltz": ("3/4", "3/8"), "polka": ("2/4",), "march": ("2/4", "4/4", "6/8")}
STYLE_WORDS = {"irish": "irish", "reel": "irish", "jig": "irish", "hornpipe": "irish", "polka": "irish",
               "scottish": "scottish", "strathspey": "scottish", "air": "scottish", "chorale": "chorale",
               "hymn": "chorale", "quartet": "string-quartet", "renaissance": "renaissance",
               "madrigal": "renaissance", "motet": "renaissance", "folk": "folk-song", "classical": "classical"}


@dataclass(frozen=True)
class TextControls:
    key: str | None = None
    tempo_bpm: float | None = None
    time_signature: str | None = None
    bars: int | None = None
    style: str | None = None
    instruments: tuple[str, ...] = ()
    form: str | None = None
    triplets: bool = False  # "with triplets", "swing": triplet rhythms allowed in the straight styles too


def _one(field: str, values: list) -> object:
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1:
        raise InvalidConditioning(f"the text names more than one {field}: {', '.join(map(str, distinct))}")
    return distinct[0] if distinct else None


def _meter(written: list[str], dances: list[str]) -> str | None:
    """The meter: a written one if it fits every dance named, else what the dance implies; raises on a clash."""
    meter = _one("meter", written)
    for dance in dict.fromkeys(dances):
        allowed = FORM_METERS[dance]
        if meter is None:
            meter = allowed[0]
        elif meter not in allowed:
            raise InvalidConditioning(f"the text asks for a {dance} in {meter}; a {dance} is in {' or '.join(allowed)}")
    return meter


def _words(text: str, table: dict) -> list:
    """Values of table entries found as whole words, longest phrases first, each span used once."""
    found, taken = [], []
    for phrase in sorted(table, key=len, reverse=True):
        for m in re.finditer(rf"\b{re.escape(phrase)}s?\b", text):
            if not any(a < m.end() and m.start() < b for a, b in taken):
                taken.append((m.start(), m.end()))
                found.append((m.start(), table[phrase]))
    return [v for _, v in sorted(found)]


def parse_text(text: str) -> TextControls:
    """Controls named in ``text``; see the module docstring for what is understood."""
    lower = text.lower()
    keys = [parse_key(f"{m.group(1)}{m.group(2) or ''} {m.group(3) or 'major'}").name
            for m in re.finditer(r"\b([a-g])(#|b|♯|♭)?\s*(major|minor)\b", lower)]
    keys += [parse_key(m.group(1) + (m.group(2) or "")).name
             for m in re.finditer(r"\bin ([a-g])(#|b)?(?=[\s,.;]|$)(?!\s*(?:major|minor))", lower)]
    numbers = [float(m.group(1)) for m in re.finditer(r"(\d{2,3})\s*bpm\b", lower)]
    tempo_words = [float(t) for t in _words(lower, TEMPO_WORDS)]
    meters = [parse_time_signature(m.group(1)).name for m in re.finditer(r"\b(\d{1,2}/\d{1,2})\b", lower)]
    forms = _words(lower, {name: name for name in FORM_METERS})
    bars = [int(m.group(1)) for m in re.finditer(r"\b(\d{1,3})\s*(?:bars|measures|bar|measure)\b", lower)]
    styles = _words(lower, STYLE_WORDS)
    instruments = tuple(dict.fromkeys(_words(lower, {name: name for name in GM_PROGRAMS if "(" not in name})))
    plans = [m.group(1) for m in re.finditer(r"(?<![\w'])([A-F]'?\d{1,2}(?:\s+[A-F]'?\d{1,2})+|(?:[A-F]'?\d{0,2}){2,})"
                                             r"(?![\w'])", text)]
    plans += _words(lower, {name: name for name in FORM_NAMES})
    result = TextControls(
        key=_one("key", keys), tempo_bpm=_one("tempo", numbers) if numbers else _one("tempo", tempo_words),
        time_signature=_meter(meters, forms), bars=_one("bar count", bars), style=_one("style", styles),
        instruments=instruments, form=_one("form", plans),
        triplets=bool(re.search(r"\b(triplets?|swing|swung|swingy)\b", lower)))
    if result == TextControls():
        raise InvalidConditioning(f"nothing in the text {text!r} names a key, tempo, meter, bar count, style, "
                                  "form or instrument this model understands; see `cadenza generate --help`")
    return result
