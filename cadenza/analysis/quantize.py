"""A grid for transcribed notes: tempo, bar lines and meter, then notes snapped to it in ticks.

The beat's phase is where the notes start (a circular mean of their onsets, weighted by loudness and
length, over the beat period); the meter, when not given, is 4/4 or 3/4, whichever puts the heaviest
notes on one beat of the bar most clearly, and that beat becomes the downbeat. Tick 0 is the last bar
line at or before the first note, so a pickup stays a pickup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cadenza.music.theory import parse_time_signature

TICKS_PER_QUARTER = 480
FIRST_BEAT_SLACK = 0.1  # the first note's beat is the downbeat unless another beat carries 10 % more
THREE_OVER_FOUR = 1.15  # 3/4 must mark its downbeats this much more clearly than 4/4 to be chosen


@dataclass(frozen=True)
class Grid:
    """``tempo_bpm`` quarter notes per minute; ``origin_s``: the time of tick 0 (a bar line);
    ``time_signature`` like '3/4'; ``steps_per_quarter``: grid steps a quarter note is split into
    (0: notes keep their exact times)."""

    tempo_bpm: float
    origin_s: float
    time_signature: str
    steps_per_quarter: int = 0

    @property
    def quarter_s(self) -> float:
        return 60.0 / self.tempo_bpm

    def ticks(self, times_s: np.ndarray) -> np.ndarray:
        """Times in seconds -> ticks at ``TICKS_PER_QUARTER``, snapped to the grid when it has steps."""
        quarters = (np.asarray(times_s, dtype=np.float64) - self.origin_s) / self.quarter_s
        if self.steps_per_quarter:
            step = TICKS_PER_QUARTER // self.steps_per_quarter
            return np.round(quarters * self.steps_per_quarter).astype(np.int64) * step
        return np.round(quarters * TICKS_PER_QUARTER).astype(np.int64)

    def to_dict(self) -> dict:
        return {"tempo_bpm": round(self.tempo_bpm, 3), "origin_s": round(self.origin_s, 4),
                "time_signature": self.time_signature, "steps_per_quarter": self.steps_per_quarter}


def beat_quarters(time_signature: str) -> float:
    """Quarter notes in one counted beat: 1 in x/4, 1.5 in 6/8, 9/8 and 12/8, 0.5 in other x/8, 2 in x/2."""
    sig = parse_time_signature(time_signature)
    if sig.denominator == 8 and sig.numerator % 3 == 0 and sig.numerator > 3:
        return 1.5
    return 4.0 / sig.denominator


def beats_per_bar(time_signature: str) -> int:
    """Counted beats in a bar: 4 in 4/4, 2 in 6/8, 3 in 3/8."""
    sig = parse_time_signature(time_signature)
    return max(1, round(sig.numerator * 4 / sig.denominator / beat_quarters(time_signature)))


def fit_grid(notes: np.ndarray, beat_bpm: float, time_signature: str | None, steps_per_quarter: int,
             refine: bool = True) -> Grid:
    """The grid for notes ``[N, 4]`` (onset_s, offset_s, pitch, velocity) whose beat is about ``beat_bpm``
    beats a minute (``refine``: fitted to the notes; False keeps it exactly), in ``time_signature`` (None: 4/4
    or 3/4, chosen from the notes). ``steps_per_quarter`` 0 keeps times exact (tick 0 at the start of the
    audio)."""
    meter = time_signature or "4/4"
    if notes.shape[0] == 0 or beat_bpm <= 0:
        quarters_per_beat = beat_quarters(meter)
        return Grid(beat_bpm * quarters_per_beat if beat_bpm > 0 else 120.0, 0.0, meter, steps_per_quarter)
    period = 60.0 / beat_bpm
    onsets = notes[:, 0]
    weight = notes[:, 3] / 127.0 * np.sqrt(np.clip(notes[:, 1] - notes[:, 0], 0.02, 2.0))
    phase = period * (np.angle(np.sum(weight * np.exp(2j * np.pi * onsets / period))) / (2 * np.pi)) % period
    if refine:
        period, phase = _refine(onsets, weight, period, phase)
    beat_index = np.round((onsets - phase) / period).astype(np.int64)
    on_beat = np.abs(onsets - phase - beat_index * period) < 0.2 * period
    if time_signature is None:
        meter, downbeat = _meter(beat_index[on_beat], weight[on_beat])
    else:
        downbeat = _strength(beat_index[on_beat], weight[on_beat], beats_per_bar(meter))[1]
    bar_s = beats_per_bar(meter) * period
    first_downbeat = phase + downbeat * period
    origin = first_downbeat - np.ceil((first_downbeat - onsets.min() - 0.25 * period) / bar_s) * bar_s
    if not steps_per_quarter:
        origin = 0.0
    return Grid(60.0 / period * beat_quarters(meter), float(origin), meter, steps_per_quarter)


def _refine(onsets: np.ndarray, weight: np.ndarray, period: float, phase: float) -> tuple[float, float]:
    """Beat period and phase fitted to the notes that fall near a beat (weighted least squares of onset
    time on beat number, twice): a tempo estimate from an autocorrelation is a lag of whole frames, and a
    grid a few per cent off drifts a beat away within a few bars."""
    for _ in range(2):
        beat = np.round((onsets - phase) / period)
        near = np.abs(onsets - phase - beat * period) < 0.25 * period
        if np.unique(beat[near]).shape[0] < 3:
            break
        w, b, t = weight[near], beat[near], onsets[near]
        b_mean, t_mean = np.average(b, weights=w), np.average(t, weights=w)
        spread = np.average((b - b_mean) ** 2, weights=w)
        if spread <= 0:
            break
        fitted = np.average((b - b_mean) * (t - t_mean), weights=w) / spread
        if not 0.8 * period < fitted < 1.25 * period:
            break
        period, phase = float(fitted), float(t_mean - fitted * b_mean)
    return period, phase


def _strength(beat_index: np.ndarray, weight: np.ndarray, per_bar: int) -> tuple[float, int]:
    """How clearly one beat of a ``per_bar``-beat bar carries the weight (its share over the mean share),
    and which beat (0-based, from beat 0 of the notes' grid). Where the first note's beat carries nearly
    as much (within ``FIRST_BEAT_SLACK``), it is that one: evenly weighted notes begin on a downbeat."""
    if weight.size == 0:
        return 1.0, 0
    sums = np.bincount(beat_index % per_bar, weights=weight, minlength=per_bar)
    first = int(beat_index[0] % per_bar)
    best = first if sums[first] >= (1 - FIRST_BEAT_SLACK) * sums.max() else int(np.argmax(sums))
    return float(sums.max() / max(sums.mean(), 1e-9)), best


def _meter(beat_index: np.ndarray, weight: np.ndarray) -> tuple[str, int]:
    four, four_down = _strength(beat_index, weight, 4)
    three, three_down = _strength(beat_index, weight, 3)
    if three > THREE_OVER_FOUR * four:
        return "3/4", three_down
    return "4/4", four_down


def quantize_notes(notes: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """``(onset_ticks [N], offset_ticks [N])`` of notes ``[N, 4]`` on ``grid``: every note at least one step
    long, none before tick 0, and a note ending where the next one of its pitch starts at the latest."""
    on = np.maximum(grid.ticks(notes[:, 0]), 0)
    off = grid.ticks(notes[:, 1])
    shortest = TICKS_PER_QUARTER // grid.steps_per_quarter if grid.steps_per_quarter else 1
    off = np.maximum(off, on + shortest)
    order = np.lexsort((on, notes[:, 2]))  # by pitch, then onset
    for a, b in zip(order[:-1], order[1:]):
        if notes[a, 2] == notes[b, 2] and off[a] > on[b] and on[b] > on[a]:
            off[a] = on[b]
    return on, off
