"""Regenerate bars i..j of a MIDI file: the fill-in-the-middle context, and the splice that keeps the rest.

The model (trained with ``ChunkSampler(infill_rate=...)``) reads::

    BOS Style Key Meter Bars_N  prefix-bars  Infill_Suffix  suffix-bars  Infill_Middle Bars_M  -> M new bars, EOS

so the new bars are written knowing both what comes before and what comes after them. The splice
works on the original score, not on its tokens: every note that starts outside the gap is kept
bit-exact (time, duration, pitch, velocity, track), notes starting inside it are replaced, and new
notes are cut at the end of the gap so none rings into the bars after it (and none is struck on the
pitch of a kept note still sounding into the gap: a MIDI file could not keep the two apart).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import symusic

from cadenza.errors import InvalidConditioning
from cadenza.fileio.midi import bar_line_ticks, time_signature_at
from cadenza.tokenizers.remi import RemiTokenizer

MIDDLE_TOKENS_PER_BAR = 48  # decode budget per regenerated bar (a busy reel bar is ~30 tokens)


@dataclass(frozen=True)
class InfillRequest:
    """Bars ``first .. first + bars - 1`` (0-based) of a piece of ``total`` bars starting at ``bar_starts`` ticks."""

    first: int
    bars: int
    total: int
    bar_starts: tuple[int, ...]  # tick of each bar line of the prompt, total + 1 entries

    @property
    def gap_ticks(self) -> tuple[int, int]:
        return self.bar_starts[self.first], self.bar_starts[self.first + self.bars]


def bar_starts(score: symusic.Score, count: int) -> list[int]:
    """Ticks of the first ``count + 1`` bar lines, following the score's time signature changes."""
    return list(itertools.islice(bar_line_ticks(score), count + 1))


def meter_at(score: symusic.Score, tick: int) -> str:
    num, den = time_signature_at(score, tick)
    return f"{num}/{den}"


def plan_infill(score: symusic.Score, prompt_bars: int, regenerate: tuple[int, int]) -> InfillRequest:
    """Check ``regenerate`` (1-based, inclusive bar numbers) against a prompt of ``prompt_bars`` bars."""
    first, last = regenerate
    if not 1 <= first <= last <= prompt_bars:
        raise InvalidConditioning(f"regenerate bars {first}-{last}: the prompt has bars 1-{prompt_bars}")
    return InfillRequest(first - 1, last - first + 1, prompt_bars, tuple(bar_starts(score, prompt_bars)))


def infill_context(tok: RemiTokenizer, controls: list[int], bars: list[list[int]], request: InfillRequest,
                   window: int) -> list[int]:
    """``controls prefix Infill_Suffix suffix Infill_Middle Bars_M`` with as many bars either side as fit
    in ``window`` beside the gap's budget; the bars nearest the gap are kept first."""
    budget = window - len(controls) - 3 - MIDDLE_TOKENS_PER_BAR * request.bars
    if budget < 0:
        raise InvalidConditioning(f"a gap of {request.bars} bars does not fit this model's window of {window} tokens")
    before = bars[:request.first]
    after = bars[request.first + request.bars:]
    prefix: list[list[int]] = []
    suffix: list[list[int]] = []
    i, j, used = len(before) - 1, 0, 0
    while i >= 0 or j < len(after):  # alternate sides, nearest bars first, until the budget is spent
        took = False
        if i >= 0 and used + len(before[i]) <= budget:
            prefix.insert(0, before[i])
            used += len(before[i])
            i, took = i - 1, True
        if j < len(after) and used + len(after[j]) <= budget:
            suffix.append(after[j])
            used += len(after[j])
            j, took = j + 1, True
        if not took:
            break
    flat = lambda parts: [t for bar in parts for t in bar]  # noqa: E731
    return controls + flat(prefix) + [tok.suffix_id] + flat(suffix) + tok.infill_ids(request.bars)


def splice_bars(score: symusic.Score, new: symusic.Score, request: InfillRequest) -> symusic.Score:
    """``score`` with the notes starting in the gap replaced by ``new``'s (whose time 0 is the gap's first
    bar line); everything else is kept exactly. New notes go to the track that had the most notes in the
    gap (else the first pitched track) and end by the gap's last bar line."""
    start, end = request.gap_ticks
    out = score.copy()
    pitched = [t for t in out.tracks if not t.is_drum]
    if not pitched:
        raise InvalidConditioning("the prompt has no pitched track to regenerate bars in")
    in_gap = [sum(1 for n in t.notes if start <= n.time < end) for t in pitched]
    target = pitched[max(range(len(pitched)), key=lambda k: in_gap[k])]
    for track in pitched:
        kept = [n for n in track.notes if not start <= n.time < end]
        track.notes = symusic.Track().notes
        for note in kept:
            track.notes.append(note)
    scale = out.ticks_per_quarter / new.ticks_per_quarter
    velocity = int(round(sum(n.velocity for n in target.notes) / len(target.notes))) if len(target.notes) else 80
    # A kept note still sounding in the gap keeps its pitch: a new note of that pitch struck under it could
    # not be stored in a MIDI file without ending the kept one early (note-offs pair with pitches, not notes).
    ringing = [(n.pitch, n.time + n.duration) for n in target.notes if n.time < start < n.time + n.duration]
    for track in new.tracks:
        for note in track.notes:
            time = start + int(round(note.time * scale))
            if time >= end or any(pitch == note.pitch and time < until for pitch, until in ringing):
                continue
            duration = max(1, min(int(round(note.duration * scale)), end - time))
            target.notes.append(symusic.Note(time, duration, note.pitch, velocity))
    target.notes.sort()
    return out
