"""How long a piece may be, and how much of it is held in memory at once.

A MIDI file of 45 bytes can ask for years of audio, and a recording for hours of work: every input is
measured before work starts and refused (``InputTooLong``) when it is longer than the limit, one hour by
default (``--max-duration``). Pieces within the limit are rendered in blocks beyond ``WHOLE_PIECE_MAX_S``,
so memory stays bounded by a constant whatever the limit is set to.
"""

from __future__ import annotations

import math
import re

from cadenza.errors import InputTooLong, InvalidConditioning

DEFAULT_MAX_DURATION_S = 3600.0  # one hour: longer inputs are refused unless the limit is raised
BLOCK_S = 10.0  # seconds of audio rendered, measured and written at a time when a piece is streamed
# Pieces up to this long are rendered whole (their loudness set as before streaming existed); longer ones are
# streamed in BLOCK_S blocks. At 44.1 kHz stereo a whole piece costs ~200 MB a minute at its peak (float32
# samples, the float64 loudness filter and its running sums; measured), so a minute keeps it under ~400 MB.
WHOLE_PIECE_MAX_S = 60.0

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds from ``"90"``, ``"90s"``, ``"30m"``, ``"7h"``, ``"1h30m"`` or ``"1:30:00"``; ``"none"`` or
    ``"off"`` -> None (no limit).

    Raises:
        InvalidConditioning: not a duration, or not a positive finite one.
    """
    value = str(text).strip().lower()
    if value in ("none", "off", "unlimited"):
        return None
    seconds: float | None = None
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}(\.\d+)?", value):
        seconds = 0.0
        for part in value.split(":"):
            seconds = seconds * 60.0 + float(part)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*(h|hr|min|m|sec|s|)", value)
        if parts and "".join(n + u for n, u in parts) == value.replace(" ", ""):
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds is None:
        raise InvalidConditioning(f"{text!r} is not a duration: write e.g. 90s, 30m, 7h, 1h30m or 1:30:00 (or 'none')")
    check_max_duration(seconds)
    return seconds


def check_max_duration(seconds: float | None) -> None:
    """Raise ``InvalidConditioning`` unless ``seconds`` is None (no limit) or a positive finite number."""
    if seconds is None:
        return
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidConditioning(f"the maximum duration must be a positive number of seconds, got {seconds!r}")


def check_duration(seconds: float, limit: float | None, what: str) -> None:
    """Raise ``InputTooLong`` when ``what`` lasts ``seconds`` and that is more than ``limit`` (None: no limit)
    or not a finite number."""
    if not math.isfinite(seconds):
        raise InputTooLong(f"{what} has no finite length (its times overflow): it cannot be played")
    if limit is not None and seconds > limit:
        raise InputTooLong(f"{what} lasts {format_duration(seconds)}, longer than the limit of {format_duration(limit)}; "
                           f"raise it with --max-duration (e.g. --max-duration {_suggest(seconds)}) if you mean it")


def format_duration(seconds: float) -> str:
    """``3725.0`` -> ``"1 h 2 min 5 s"``; very long spans in days or years."""
    if seconds >= 365 * 86400:
        return f"{seconds / (365.25 * 86400):.3g} years"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.3g} days"
    whole = int(round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h} h" if h else "", f"{m} min" if m else "", f"{s} s" if s or not (h or m) else ""]
    if seconds < 10:
        return f"{seconds:.2f} s"
    return " ".join(p for p in parts if p)


def _suggest(seconds: float) -> str:
    return f"{math.ceil(seconds / 3600)}h" if seconds >= 3600 else f"{math.ceil(seconds / 60)}m"
