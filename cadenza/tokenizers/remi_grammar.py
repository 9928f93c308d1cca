"""The REMI grammar as a decode constraint: every sampled sequence decodes, with exact controls.

Per row the grammar tracks where it is in the sequence and allows only the tokens that may come next::

    BOS Style Key Meter Bars | (Bar TimeSig (Position (Pitch Duration)+)*)^N EOS

- control slots are either forced (the user set the field) or restricted to their token type
  (the model picks a style/key/meter it finds likely);
- each Bar is followed by the TimeSig of the row's meter, and Positions rise within a bar and stay
  below the bar's length;
- exactly N bars: Bar is refused after the N-th, EOS is refused before it; and when the remaining token
  budget only just covers the bars still owed, new notes are refused so the count is always reached;
- at least one note is written, so no output is empty;
- the row's style limits what its data shows (``STYLE_LIMITS``): distinct pitches per onset, notes per
  bar, and for straight styles onsets and durations on the sixteenth grid; a pitch is never written
  twice at one onset; in a single-line style (one pitch per onset) a note ends by its bar line. So a bar cannot fill up with a pile of notes when the model would rather go on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cadenza.tokenizers.remi import MAX_BARS_TOKEN, RemiTokenizer
from cadenza.tokenizers.styles import STYLE_LIMITS, StyleLimits

# Grammar states: what the previous token was.
CONTROL_STYLE, CONTROL_KEY, CONTROL_METER, CONTROL_BARS, NEED_BAR, AFTER_BAR, AFTER_TIMESIG, AFTER_POSITION, \
    AFTER_PITCH, AFTER_DURATION, FINISHED = range(11)


@dataclass(frozen=True)
class GrammarSpec:
    """Forced control tokens (None lets the model choose) and the bar count to write.

    ``bars_before``: bars already present in a continuation prompt (they count toward ``total_bars``).
    ``start_state``: CONTROL_STYLE when decoding from BOS; NEED_BAR when the prompt already holds
    the controls (and possibly whole bars).
    """

    style_id: int | None
    key_id: int | None
    meter_id: int | None  # a Meter_* control id
    total_bars: int
    max_new_tokens: int
    bars_before: int = 0
    start_state: int = CONTROL_STYLE
    window: bool = False  # the budget is one window of a longer piece: stop at a bar line when it runs low
    key_bias: float = 0.0  # strength of the row key's pitch-class log-prior on Pitch logits (0 = off)
    bars_control: int | None = None  # the Bars_N control written (default total_bars): a section of a longer piece
    open_end: bool = False  # the piece goes on after total_bars: the next Bar ends this call instead of EOS
    straight: bool | None = None  # sixteenth-grid rhythm: None follows the style (STYLE_LIMITS), False allows triplets


def straight_grid(denominator: int) -> int:
    """The straight grid in Position ticks (12 per beat of the meter's denominator): sixteenths, or in
    half-note meters, whose ticks cannot hold a sixteenth (1.5 ticks), eighths."""
    return max(3, 12 * denominator // 16)


WINDOW_RESERVE = 48


@dataclass(frozen=True)
class _Rules:
    """A style's limits in one meter: notes per bar, distinct pitches per onset, rhythm grid in ticks."""

    bar_cap: int
    per_onset: int
    grid: int  # tokens kept free in a window: below this a window closes its bar and stops


class RemiGrammar:
    """Implements the engine's ``Constraint`` protocol for REMI sequences (see module docstring)."""

    def __init__(self, tokenizer: RemiTokenizer, spec: GrammarSpec) -> None:
        self.tok, self.spec = tokenizer, spec
        v = len(tokenizer)
        self.vocab_size = v

        def type_mask(prefix: str) -> torch.Tensor:
            mask = torch.zeros(v, dtype=torch.bool)
            mask[tokenizer.ids_of_type(prefix)] = True
            return mask

        self.m_style, self.m_key, self.m_meter = type_mask("Style"), type_mask("Key"), type_mask("Meter")
        self.m_pitch, self.m_duration = type_mask("Pitch"), type_mask("Duration")
        self.m_bar = torch.zeros(v, dtype=torch.bool)
        self.m_bar[tokenizer.bar_id] = True
        self.m_eos = torch.zeros(v, dtype=torch.bool)
        self.m_eos[tokenizer.eos_id] = True
        self.position_value = torch.full((v,), -1, dtype=torch.long)
        for idx in tokenizer.ids_of_type("Position"):
            self.position_value[idx] = int(tokenizer.value_of(idx))
        # Meter control id -> (TimeSig id, positions per bar)
        from cadenza.music.theory import parse_time_signature

        self.timesig_of_meter = torch.full((v,), -1, dtype=torch.long)
        self.positions_of_meter = torch.zeros(v, dtype=torch.long)
        for idx in tokenizer.ids_of_type("Meter"):
            value = tokenizer.value_of(idx)
            self.timesig_of_meter[idx] = tokenizer.vocab[f"TimeSig_{value}"]
            self.positions_of_meter[idx] = tokenizer.positions_per_bar(parse_time_signature(value))
        bars_control = spec.total_bars if spec.bars_control is None else spec.bars_control
        self.bars_token = tokenizer.vocab[f"Bars_{min(bars_control, MAX_BARS_TOKEN)}"]
        # Style control id -> limits; a row whose style is unknown gets the loosest (-1).
        self._limits: dict[int, StyleLimits] = {tokenizer.vocab[f"Style_{name}"]: limits
                                                for name, limits in STYLE_LIMITS.items()}
        self._limits[-1] = StyleLimits(max(x.notes_per_onset for x in STYLE_LIMITS.values()),
                                       max(x.notes_per_quarter for x in STYLE_LIMITS.values()), False)
        self._rules: dict[tuple[int, int], _Rules] = {}  # (style id, meter id) -> rules, filled as rows need them
        self._style_ids = set(tokenizer.ids_of_type("Style"))
        self._quarters_of_meter = {idx: parse_time_signature(tokenizer.value_of(idx)).quarters_per_bar
                                   for idx in tokenizer.ids_of_type("Meter")}
        # the straight grid in Position ticks per meter (see straight_grid)
        self._grid_of_meter = {idx: straight_grid(parse_time_signature(tokenizer.value_of(idx)).denominator)
                               for idx in tokenizer.ids_of_type("Meter")}
        self.duration_ticks = torch.zeros(v, dtype=torch.long)
        for idx in tokenizer.ids_of_type("Duration"):
            whole, sub, res = (int(x) for x in tokenizer.value_of(idx).split("."))
            self.duration_ticks[idx] = whole * 12 + sub * 12 // res
        # Host-side lookups for the per-step state machine (Python ints, no tensor ops per row).
        self._position_of = self.position_value.tolist()
        self._positions_per_bar = dict(zip(tokenizer.ids_of_type("Meter"),
                                           self.positions_of_meter[tokenizer.ids_of_type("Meter")].tolist()))
        self._meter_ids = set(tokenizer.ids_of_type("Meter"))
        self._key_ids = set(tokenizer.ids_of_type("Key"))
        self._pitch_ids = set(tokenizer.ids_of_type("Pitch"))
        self._duration_ids = set(tokenizer.ids_of_type("Duration"))
        # Key control id -> additive log-prior [V] on Pitch tokens: key_bias * log(profile / max profile), with
        # the Krumhansl-Kessler profile of that key. The tonic costs nothing, the third and fifth a little,
        # pitches outside the scale about 0.9 * key_bias: it pulls toward the key's tonal centre, not only
        # its scale, which a scale mask alone cannot do (E minor and G major share one scale).
        from cadenza.music.theory import MAJOR_PROFILE, MINOR_PROFILE, parse_key

        self.key_prior: dict[int, torch.Tensor] = {}
        if spec.key_bias:
            pitch_of_id = torch.as_tensor(tokenizer.pitch_of_id)
            is_pitch = pitch_of_id >= 0
            for idx in tokenizer.ids_of_type("Key"):
                key = parse_key(tokenizer.value_of(idx).replace("_", " "))
                profile = torch.as_tensor(MAJOR_PROFILE if key.mode == "major" else MINOR_PROFILE, dtype=torch.float32)
                log_prior = torch.log(profile / profile.max())
                degree = (pitch_of_id - key.tonic) % 12
                self.key_prior[idx] = torch.where(is_pitch, spec.key_bias * log_prior[degree], 0.0)

    # ---- Constraint protocol ----------------------------------------------------------------------
    # Per-row state lives in Python ints and each step's mask rows come from a small cache keyed by
    # what decides them (state, position, bar length, flags): a step then costs a few dict lookups and
    # one ``torch.stack`` instead of a dozen tiny tensor ops per row, which at batch 1 was a visible
    # share of a decode step.
    def start(self, batch_size: int, prompt: torch.Tensor) -> None:
        b, spec = batch_size, self.spec
        self.state = [spec.start_state] * b
        self.bars = [spec.bars_before] * b
        self.position = [-1] * b
        self.notes = [0] * b
        self.meter = [-1 if spec.meter_id is None else spec.meter_id] * b
        self.key = [-1 if spec.key_id is None else spec.key_id] * b
        self.style = [-1 if spec.style_id is None else spec.style_id] * b
        self.onset_pitches: list[tuple[int, ...]] = [()] * b  # pitch ids written at the current position
        self.bar_notes = [0] * b
        if spec.start_state != CONTROL_STYLE:  # controls are in the prompt: read each row's meter, key and style
            for row in range(b):
                ids = prompt[row if prompt.shape[0] == b else 0].tolist()
                meters = [t for t in ids if t in self._meter_ids]
                if not meters:
                    raise ValueError("a continuation prompt must contain its Meter control token")
                keys = [t for t in ids if t in self._key_ids]
                styles = [t for t in ids if t in self._style_ids]
                self.meter[row] = meters[-1]
                self.key[row] = keys[-1] if keys else -1
                self.style[row] = styles[-1] if styles else -1
                self.notes[row] = sum(t in self._pitch_ids for t in ids)
        self.step = 0
        self._rows: dict[tuple, torch.Tensor] = {}
        self._bias: dict[tuple[int, ...], torch.Tensor] = {}

    def mask(self, step: int) -> torch.Tensor:
        remaining = self.spec.max_new_tokens - step  # tokens left including this one
        return torch.stack([self._row_mask(row, remaining) for row in range(len(self.state))])

    def advance(self, ids: torch.Tensor) -> None:
        spec, tok = self.spec, self.tok
        for row, t in enumerate(ids.tolist()):
            s = self.state[row]
            if s == FINISHED:
                continue
            if s in (CONTROL_STYLE, CONTROL_KEY, CONTROL_BARS):
                if s == CONTROL_KEY:
                    self.key[row] = t
                elif s == CONTROL_STYLE:
                    self.style[row] = t
                self.state[row] = s + 1 if s != CONTROL_BARS else NEED_BAR
            elif s == CONTROL_METER:
                self.meter[row] = t
                self.state[row] = CONTROL_BARS
            elif t == tok.eos_id:
                self.state[row] = FINISHED
            elif t == tok.bar_id and spec.window and spec.max_new_tokens - self.step <= WINDOW_RESERVE:
                self.state[row] = FINISHED  # window full: this Bar is dropped and the next window goes on
            elif t == tok.bar_id and self.bars[row] >= spec.total_bars:
                self.state[row] = FINISHED  # open end: the bars asked of this call are written; the Bar is dropped
            elif t == tok.bar_id:
                self.bars[row] += 1
                self.position[row] = -1
                self.bar_notes[row] = 0
                self.state[row] = AFTER_BAR
            elif s == AFTER_BAR:
                self.state[row] = AFTER_TIMESIG
            elif self._position_of[t] >= 0:
                self.position[row] = self._position_of[t]
                self.onset_pitches[row] = ()
                self.state[row] = AFTER_POSITION
            elif t in self._pitch_ids:
                self.notes[row] += 1
                self.bar_notes[row] += 1
                self.onset_pitches[row] = self.onset_pitches[row] + (t,)
                self.state[row] = AFTER_PITCH
            elif t in self._duration_ids:
                self.state[row] = AFTER_DURATION
        self.step += 1

    def done(self) -> torch.Tensor:
        return torch.tensor([s == FINISHED for s in self.state])

    def bias(self, step: int) -> torch.Tensor | None:
        """Soft key preference: ``[B, V]`` log-prior on pitches from each row's key, or None when off."""
        if not self.key_prior:
            return None
        keys = tuple(self.key)
        if keys not in self._bias:  # keys are fixed after the control prefix: built once or twice a call
            zero = torch.zeros(self.vocab_size)
            self._bias[keys] = torch.stack([self.key_prior.get(k, zero) for k in keys])
        return self._bias[keys]

    def _row_mask(self, row: int, remaining: int) -> torch.Tensor:
        """Allowed tokens ``[V]`` for one row (cached: callers must not modify it)."""
        s = self.state[row]
        if s in (NEED_BAR, AFTER_TIMESIG, AFTER_DURATION):
            in_bar = s != NEED_BAR
            owed = max(self.spec.total_bars - self.bars[row], 0)
            # Bar + TimeSig per owed bar + EOS, plus Pitch + Duration to finish a note started now.
            room = in_bar and remaining > (WINDOW_RESERVE if self.spec.window else 2 * owed + 3)
            rules = self._rules_of(row)
            bar_full = self.bar_notes[row] >= rules.bar_cap
            new_onsets = room and not bar_full
            limit = self._positions_per_bar[self.meter[row]] if new_onsets else 0
            chord = ()
            if s == AFTER_DURATION and room and len(self.onset_pitches[row]) < rules.per_onset and not bar_full:
                chord = (True,) + self.onset_pitches[row]  # another note may join this onset, but no pitch twice
            key = (s, new_onsets, self.position[row] if new_onsets else 0, limit, rules.grid, chord, owed > 0,
                   self.notes[row] > 0)
        elif s == AFTER_BAR:
            key = (s, self.meter[row])
        elif s == AFTER_PITCH:
            rules = self._rules_of(row)
            # one line (a single-line style): a note ends by the bar line, so no note is held under the next ones
            room_left = self._positions_per_bar[self.meter[row]] - self.position[row] if rules.per_onset == 1 else 0
            key = (s, rules.grid, room_left)
        else:
            key = (s,)
        mask = self._rows.get(key)
        if mask is None:
            mask = self._rows[key] = self._build_row(*key)
        return mask

    def _build_row(self, s: int, *args) -> torch.Tensor:
        allowed = torch.zeros(self.vocab_size, dtype=torch.bool)
        if s == CONTROL_STYLE:
            return self._forced_or(self.spec.style_id, self.m_style)
        if s == CONTROL_KEY:
            return self._forced_or(self.spec.key_id, self.m_key)
        if s == CONTROL_METER:
            return self._forced_or(self.spec.meter_id, self.m_meter)
        if s == CONTROL_BARS:
            allowed[self.bars_token] = True
        elif s == AFTER_BAR:
            allowed[self.timesig_of_meter[args[0]]] = True
        elif s == AFTER_POSITION:
            return self.m_pitch
        elif s == AFTER_PITCH:
            grid, room_left = args
            allowed = self.m_duration & (self.duration_ticks % grid == 0)
            if room_left > 0:
                allowed &= self.duration_ticks <= room_left
            return allowed
        elif s == FINISHED:
            allowed[self.tok.pad_id] = True
        else:  # NEED_BAR, AFTER_TIMESIG, AFTER_DURATION
            new_onsets, position, limit, grid, chord, owes_bars, has_notes = args
            if new_onsets:
                allowed |= ((self.position_value > position) & (self.position_value < limit)
                            & (self.position_value % grid == 0))
            if chord:  # another note at the same position (a chord), never a pitch already there
                allowed |= self.m_pitch
                allowed[list(chord[1:])] = False
            if owes_bars or (self.spec.open_end and has_notes):
                allowed |= self.m_bar  # with an open end, the Bar after the last bar ends the call
            elif has_notes or not allowed.any():  # out of room and still silent: cannot happen with sane budgets
                allowed |= self.m_eos
        return allowed

    def _rules_of(self, row: int) -> _Rules:
        """The row's style limits in its meter, derived once per (style, meter) and kept: this runs every step."""
        key = (self.style[row], self.meter[row])
        rules = self._rules.get(key)
        if rules is None:
            limits = self._limits.get(key[0], self._limits[-1])
            straight = limits.straight if self.spec.straight is None else self.spec.straight
            rules = self._rules[key] = _Rules(
                bar_cap=math.ceil(limits.notes_per_quarter * self._quarters_of_meter[key[1]] - 1e-9),
                per_onset=limits.notes_per_onset, grid=self._grid_of_meter[key[1]] if straight else 1)
        return rules

    def _forced_or(self, forced: int | None, type_mask: torch.Tensor) -> torch.Tensor:
        if forced is None:
            return type_mask
        out = torch.zeros(self.vocab_size, dtype=torch.bool)
        out[forced] = True
        return out
