"""General MIDI instrument names -> program numbers (0-127), for ``Conditioning.instruments``."""

from __future__ import annotations

from cadenza.errors import InvalidConditioning

# The common names a musician types; the full GM list is long and mostly not needed to be typed by name,
# so "program:N" is also accepted for any of the 128.
GM_PROGRAMS = {
    "piano": 0, "acoustic piano": 0, "grand piano": 0, "bright piano": 1, "electric piano": 4, "harpsichord": 6,
    "clavinet": 7, "celesta": 8, "glockenspiel": 9, "music box": 10, "vibraphone": 11, "marimba": 12,
    "xylophone": 13, "tubular bells": 14, "dulcimer": 15, "organ": 19, "church organ": 19, "accordion": 21,
    "harmonica": 22, "guitar": 24, "nylon guitar": 24, "acoustic guitar": 25, "steel guitar": 25,
    "electric guitar": 27, "bass": 32, "acoustic bass": 32, "electric bass": 33, "violin": 40, "fiddle": 40,
    "viola": 41, "cello": 42, "contrabass": 43, "double bass": 43, "harp": 46, "timpani": 47,
    "strings": 48, "string ensemble": 48, "choir": 52, "voice": 52, "voices": 52, "trumpet": 56,
    "trombone": 57, "tuba": 58, "french horn": 60, "horn": 60, "brass": 61, "soprano sax": 64, "alto sax": 65,
    "saxophone": 65, "sax": 65, "tenor sax": 66, "baritone sax": 67, "oboe": 68, "english horn": 69,
    "bassoon": 70, "clarinet": 71, "piccolo": 72, "flute": 73, "recorder": 74, "pan flute": 75,
    "whistle": 78, "tin whistle": 78, "ocarina": 79, "bagpipe": 109, "fiddle (folk)": 110, "shanai": 111,
    "steel drums": 114,
}


def program_of(name: str) -> int:
    """GM program for an instrument name ('violin', 'tin whistle') or 'program:N'."""
    key = name.strip().lower()
    if key.startswith("program:"):
        try:
            program = int(key.split(":", 1)[1])
        except ValueError:
            program = -1
        if not 0 <= program <= 127:
            raise InvalidConditioning(f"{name!r}: a GM program must be program:0 ... program:127")
        return program
    if key not in GM_PROGRAMS:
        raise InvalidConditioning(f"unknown instrument {name!r}; try one of: {', '.join(sorted(GM_PROGRAMS))} "
                                  f"(or program:N for any General MIDI program)")
    return GM_PROGRAMS[key]


def named_instrument(text: str | None, names=None) -> str | None:
    """The instrument a description names ("a reel on a solo tin whistle" -> "tin whistle"): the longest of
    ``names`` (default: those of ``GM_PROGRAMS``) found in it as whole words, the earliest on a tie; None
    when it names none."""
    if not text:
        return None
    import re

    words = " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "
    found = [(-len(name), words.find(f" {name} "), name) for name in (GM_PROGRAMS if names is None else names)
             if f" {name} " in words]
    return min(found)[2] if found else None
