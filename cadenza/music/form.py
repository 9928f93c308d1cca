"""Musical form as a plan of lettered sections, and the measures that check a piece against one.

A plan is written as letters, each optionally primed and sized: ``AABB``, ``AABA``, ``A8 B8``,
``A A' B B'``, ``A4A4'B4B4'``. Equal letters are the same music; a primed letter (``A'``) is the same
music with a different last bar (first and second endings). A few names are understood as well
(``two-part`` = AABB, ``verse chorus`` = ABAB, ...). Lengths not written are shared out equally among the
bars left, which must divide exactly; a letter keeps one length wherever it appears.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import symusic

from cadenza.errors import InvalidConditioning

FORM_NAMES = {"binary": "AB", "two-part": "AABB", "two part": "AABB", "three-part": "AABBCC",
              "three part": "AABBCC", "ternary": "ABA", "rounded binary": "AABABA", "rondo": "ABACA",
              "verse chorus": "ABAB", "verse-chorus": "ABAB", "through-composed": "A"}
MAX_SECTIONS = 16
_SECTION = re.compile(r"([A-Ha-h])('?)(\d*)")  # sections A..H


@dataclass(frozen=True)
class Section:
    """One section of a plan: ``letter`` (upper case), ``primed`` (a second ending), bars ``start:start+bars``."""

    letter: str
    primed: bool
    bars: int
    start: int

    @property
    def name(self) -> str:
        return self.letter + ("'" if self.primed else "")


@dataclass(frozen=True)
class FormPlan:
    sections: tuple[Section, ...]

    @property
    def bars(self) -> int:
        return sum(s.bars for s in self.sections)

    @property
    def text(self) -> str:
        """The plan written out in full, e.g. ``A4 A'4 B4 B'4`` (parse_form reads it back)."""
        return " ".join(f"{s.name}{s.bars}" for s in self.sections)

    def first_of(self, letter: str) -> Section:
        return next(s for s in self.sections if s.letter == letter)

    def source_of_bars(self) -> list[int | None]:
        """For each bar, the earlier bar it must repeat exactly (None: new music or a second ending's bar)."""
        out: list[int | None] = []
        for section in self.sections:
            first = self.first_of(section.letter)
            for b in range(section.bars):
                repeats = first is not section and not (section.primed and b == section.bars - 1)
                out.append(first.start + b if repeats else None)
        return out


def parse_form(text: str, bars: int | None = None) -> FormPlan:
    """A FormPlan from ``text``; with ``bars`` the plan must add up to it (InvalidConditioning otherwise).

    Without ``bars``, unsized sections take the size of the same letter elsewhere, else 8 bars.
    """
    raw = text.strip()
    written = FORM_NAMES.get(raw.lower(), raw)
    compact = written.replace(" ", "")
    if not compact or _SECTION.sub("", compact):
        raise InvalidConditioning(f"form {text!r}: write letters such as AABB, AABA, 'A8 B8' or A A' B B' "
                                  f"(or one of: {', '.join(sorted(FORM_NAMES))})")
    parts = [(m.group(1).upper(), bool(m.group(2)), int(m.group(3)) if m.group(3) else None)
             for m in _SECTION.finditer(compact)]
    if len(parts) > MAX_SECTIONS:
        raise InvalidConditioning(f"form {text!r} has {len(parts)} sections; at most {MAX_SECTIONS}")
    sizes: dict[str, int] = {}
    for letter, _, size in parts:
        if size is not None:
            if size < 1:
                raise InvalidConditioning(f"form {text!r}: a section needs at least one bar")
            if sizes.setdefault(letter, size) != size:
                raise InvalidConditioning(f"form {text!r}: section {letter} has two lengths ({sizes[letter]} and {size})")
    for letter, primed, size in parts:
        if primed and letter not in [p[0] for p in parts[:parts.index((letter, primed, size))]]:
            raise InvalidConditioning(f"form {text!r}: {letter}' comes before any {letter}")
    open_letters = list(dict.fromkeys(p[0] for p in parts if p[0] not in sizes))
    if open_letters:
        fixed = sum(sizes[p[0]] for p in parts if p[0] in sizes)
        slots = sum(1 for p in parts if p[0] not in sizes)
        if bars is None:
            each = 8
        elif bars <= fixed or (bars - fixed) % slots:
            raise InvalidConditioning(f"form {text!r} cannot fill {bars} bars: {bars - fixed} bars left for "
                                      f"{slots} unsized sections; give sizes (e.g. 'A8 B8') or another bar count")
        else:
            each = (bars - fixed) // slots
        sizes.update({letter: each for letter in open_letters})
    sections, start = [], 0
    for letter, primed, _ in parts:
        if primed and sizes[letter] < 2:
            raise InvalidConditioning(f"form {text!r}: {letter}' needs a section of 2+ bars (it changes the last one)")
        sections.append(Section(letter, primed, sizes[letter], start))
        start += sizes[letter]
    plan = FormPlan(tuple(sections))
    if bars is not None and plan.bars != bars:
        raise InvalidConditioning(f"form {plan.text} adds up to {plan.bars} bars, but bars={bars}")
    return plan


def style_form(style: str | None, bars: int) -> FormPlan | None:
    """The usual form of ``style`` at ``bars`` bars, or None (through-composed).

    Dance tunes and airs (irish, scottish, folk-song) are two repeated parts with second endings,
    ``A A' B B'``: O'Neill's reels and jigs are AABB of 8-bar parts, and 16-bar tunes repeat 40% of their
    bars exactly (``python -m benchmarks symbolic_form`` prints the corpus figure). A tune too short for
    four parts of 4+ bars is ``A A'``. The other styles are left through-composed.
    """
    if style not in ("irish", "scottish", "folk-song") or bars < 4:
        return None
    if bars % 4 == 0 and bars >= 16:
        return parse_form("A A' B B'", bars)
    if bars % 2 == 0:
        return parse_form("A A'", bars)
    return None


# ---- measures ---------------------------------------------------------------------------------------
def bar_contents(score: symusic.Score, bars: int | None = None) -> list[tuple]:
    """Per bar, the sorted ``(onset within the bar, pitch)`` of every note starting in it (first meter)."""
    sigs = score.time_signatures
    num, den = (sigs[0].numerator, sigs[0].denominator) if len(sigs) else (4, 4)
    bar_ticks = int(round(num * 4 / den * score.ticks_per_quarter))
    notes = [(n.time, n.pitch) for t in score.tracks if not t.is_drum for n in t.notes]
    count = bars if bars is not None else (max((t for t, _ in notes), default=-1) // bar_ticks + 1)
    out: list[list] = [[] for _ in range(count)]
    for time, pitch in notes:
        if time // bar_ticks < count:
            out[time // bar_ticks].append((time % bar_ticks, pitch))
    return [tuple(sorted(set(b))) for b in out]


def repeated_bar_rate(score: symusic.Score, bars: int | None = None) -> float:
    """Share of non-empty bars whose notes (onsets and pitches) equal an earlier bar's exactly."""
    contents = bar_contents(score, bars)
    seen, repeated, counted = set(), 0, 0
    for bar in contents:
        if not bar:
            continue
        counted += 1
        repeated += bar in seen
        seen.add(bar)
    return repeated / counted if counted else 0.0


def form_exact(score: symusic.Score, plan: FormPlan) -> bool:
    """Every bar the plan repeats equals its source bar exactly, and every second ending differs from the first."""
    contents = bar_contents(score, plan.bars)
    sources = plan.source_of_bars()
    if any(src is not None and contents[b] != contents[src] for b, src in enumerate(sources)):
        return False
    for section in plan.sections:
        if section.primed:
            first = plan.first_of(section.letter)
            if contents[section.start + section.bars - 1] == contents[first.start + first.bars - 1]:
                return False
    return True


def onset_stats(score: symusic.Score) -> tuple[float, float]:
    """``(overlap_rate, same_onset_rate)`` of all notes merged: the share of notes that sound past the next
    later onset, and the share that start together with another note."""
    notes = sorted((n.time, n.end) for t in score.tracks if not t.is_drum for n in t.notes)
    if not notes:
        return 0.0, 0.0
    times = np.array([t for t, _ in notes])
    ends = np.array([e for _, e in notes])
    onsets = np.unique(times)
    nxt = np.searchsorted(onsets, times, side="right")
    has_next = nxt < len(onsets)
    overlap = np.zeros(len(notes), dtype=bool)
    overlap[has_next] = ends[has_next] > onsets[nxt[has_next]]
    _, counts = np.unique(times, return_counts=True)
    same = counts[counts > 1].sum()
    return float(overlap.mean()), float(same / len(notes))
