"""The REMI grammar as a decode constraint: every sampled sequence decodes, with exact controls.

Per row the grammar tracks where it is in the sequence and allows only the tokens that may come next::

    BOS Style Key Meter Bars | (Bar TimeSig (Position (Pitch Duration)+)*)^N EOS

- control slots are either forced (the user set the field) or restricted to their token type
  (the model picks a style/key/meter it finds likely);
- each Bar is followed by the TimeSig of the row's meter, and Positions rise within a bar and stay
  below the bar's length;
- exactly N bars: Bar is refused after the N-th, EOS is refused before it; and when the remaining token
  budget only just covers the bars still owed, new notes are refused so the count is always reached;
- at least one note is written, so no output is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cadenza.tokenizers.remi import MAX_BARS_TOKEN, RemiTokenizer

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


WINDOW_RESERVE = 48  # tokens kept free in a window: below this a window closes its bar and stops


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
        self.bars_token = tokenizer.vocab[f"Bars_{min(spec.total_bars, MAX_BARS_TOKEN)}"]
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
        if spec.start_state != CONTROL_STYLE:  # controls are in the prompt: read meter and key from it
            ids = prompt[0].tolist()
            meters = [t for t in ids if t in self._meter_ids]
            if not meters:
                raise ValueError("a continuation prompt must contain its Meter control token")
            keys = [t for t in ids if t in self._key_ids]
            self.meter = [meters[-1]] * b
            self.key = [keys[-1] if keys else -1] * b
            self.notes = [sum(t in self._pitch_ids for t in ids)] * b
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
                self.state[row] = s + 1 if s != CONTROL_BARS else NEED_BAR
            elif s == CONTROL_METER:
                self.meter[row] = t
                self.state[row] = CONTROL_BARS
            elif t == tok.eos_id:
                self.state[row] = FINISHED
            elif t == tok.bar_id and spec.window and spec.max_new_tokens - self.step <= WINDOW_RESERVE:
                self.state[row] = FINISHED  # window full: this Bar is dropped and the next window goes on
            elif t == tok.bar_id:
                self.bars[row] += 1
                self.position[row] = -1
                self.state[row] = AFTER_BAR
            elif s == AFTER_BAR:
                self.state[row] = AFTER_TIMESIG
            elif self._position_of[t] >= 0:
                self.position[row] = self._position_of[t]
                self.state[row] = AFTER_POSITION
            elif t in self._pitch_ids:
                self.notes[row] += 1
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
            limit = self._positions_per_bar[self.meter[row]] if room else 0
            key = (s, room, self.position[row] if room else 0, limit, owed > 0, self.notes[row] > 0)
        elif s == AFTER_BAR:
            key = (s, self.meter[row])
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
            return self.m_duration
        elif s == FINISHED:
            allowed[self.tok.pad_id] = True
        else:  # NEED_BAR, AFTER_TIMESIG, AFTER_DURATION
            room, position, limit, owes_bars, has_notes = args
            if room:
                allowed |= (self.position_value > position) & (self.position_value < limit)
                if s == AFTER_DURATION:
                    allowed |= self.m_pitch  # another note at the same position (a chord)
            if owes_bars:
                allowed |= self.m_bar
            elif has_notes or not allowed.any():  # out of room and still silent: cannot happen with sane budgets
                allowed |= self.m_eos
        return allowed

    def _forced_or(self, forced: int | None, type_mask: torch.Tensor) -> torch.Tensor:
        if forced is None:
            return type_mask
        out = torch.zeros(self.vocab_size, dtype=torch.bool)
        out[forced] = True
        return out
