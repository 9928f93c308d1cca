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
    def start(self, batch_size: int, prompt: torch.Tensor) -> None:
        b = batch_size
        self.state = torch.full((b,), self.spec.start_state, dtype=torch.long)
        self.bars = torch.full((b,), self.spec.bars_before, dtype=torch.long)
        self.position = torch.full((b,), -1, dtype=torch.long)
        self.notes = torch.zeros(b, dtype=torch.long)
        self.meter = torch.full((b,), -1 if self.spec.meter_id is None else self.spec.meter_id, dtype=torch.long)
        self.key = torch.full((b,), -1 if self.spec.key_id is None else self.spec.key_id, dtype=torch.long)
        if self.spec.start_state != CONTROL_STYLE:  # controls are in the prompt: read meter and key from it
            meters = [int(t) for t in prompt[0].tolist() if self.m_meter[int(t)]]
            if not meters:
                raise ValueError("a continuation prompt must contain its Meter control token")
            self.meter[:] = meters[-1]
            keys = [int(t) for t in prompt[0].tolist() if self.m_key[int(t)]]
            self.key[:] = keys[-1] if keys else -1
            self.notes[:] = int(self.m_pitch[prompt[0].cpu()].sum())
        self.step = 0

    def mask(self, step: int) -> torch.Tensor:
        b, v = self.state.shape[0], self.vocab_size
        allowed = torch.zeros(b, v, dtype=torch.bool)
        remaining = self.spec.max_new_tokens - step  # tokens left including this one
        owed = (self.spec.total_bars - self.bars).clamp(min=0)
        # Bar + TimeSig per owed bar + EOS, plus Pitch + Duration to finish a note started now.
        room_for_notes = (torch.full_like(owed, remaining) > (WINDOW_RESERVE if self.spec.window else 2 * owed + 3))
        for row in range(b):
            s = int(self.state[row])
            if s == CONTROL_STYLE:
                allowed[row] = self._forced_or(self.spec.style_id, self.m_style)
            elif s == CONTROL_KEY:
                allowed[row] = self._forced_or(self.spec.key_id, self.m_key)
            elif s == CONTROL_METER:
                allowed[row] = self._forced_or(self.spec.meter_id, self.m_meter)
            elif s == CONTROL_BARS:
                allowed[row, self.bars_token] = True
            elif s == AFTER_BAR:
                allowed[row, self.timesig_of_meter[self.meter[row]]] = True
            elif s == AFTER_POSITION:
                allowed[row] = self.m_pitch
            elif s == AFTER_PITCH:
                allowed[row] = self.m_duration
            elif s == FINISHED:
                allowed[row, self.tok.pad_id] = True
            else:  # NEED_BAR, AFTER_TIMESIG, AFTER_DURATION
                in_bar = s in (AFTER_TIMESIG, AFTER_DURATION)
                if in_bar and bool(room_for_notes[row]):
                    limit = self.positions_of_meter[self.meter[row]]
                    allowed[row] |= (self.position_value > self.position[row]) & (self.position_value < limit)
                    if s == AFTER_DURATION:
                        allowed[row] |= self.m_pitch  # another note at the same position (a chord)
                if self.bars[row] < self.spec.total_bars:
                    allowed[row] |= self.m_bar
                elif in_bar or s == NEED_BAR:
                    if self.notes[row] > 0:
                        allowed[row] |= self.m_eos
                    elif not allowed[row].any():  # out of room and still silent: cannot happen with sane budgets
                        allowed[row] |= self.m_eos
        return allowed

    def advance(self, ids: torch.Tensor) -> None:
        ids = ids.cpu()
        for row in range(ids.shape[0]):
            t, s = int(ids[row]), int(self.state[row])
            if s == FINISHED:
                continue
            if s in (CONTROL_STYLE, CONTROL_KEY, CONTROL_BARS):
                if s == CONTROL_KEY:
                    self.key[row] = t
                self.state[row] = s + 1 if s != CONTROL_BARS else NEED_BAR
            elif s == CONTROL_METER:
                self.meter[row] = t
                self.state[row] = CONTROL_BARS
            elif t == self.tok.eos_id:
                self.state[row] = FINISHED
            elif t == self.tok.bar_id and self.spec.window and self.spec.max_new_tokens - self.step <= WINDOW_RESERVE:
                self.state[row] = FINISHED  # window full: this Bar is dropped and the next window goes on
            elif t == self.tok.bar_id:
                self.bars[row] += 1
                self.position[row] = -1
                self.state[row] = AFTER_BAR
            elif s == AFTER_BAR:
                self.state[row] = AFTER_TIMESIG
            elif self.position_value[t] >= 0:
                self.position[row] = self.position_value[t]
                self.state[row] = AFTER_POSITION
            elif self.m_pitch[t]:
                self.notes[row] += 1
                self.state[row] = AFTER_PITCH
            elif self.m_duration[t]:
                self.state[row] = AFTER_DURATION
        self.step += 1

    def done(self) -> torch.Tensor:
        return self.state == FINISHED

    def bias(self, step: int) -> torch.Tensor | None:
        """Soft key preference: ``[B, V]`` log-prior on pitches from each row's key, or None when off."""
        if not self.key_prior:
            return None
        zero = torch.zeros(self.vocab_size)
        return torch.stack([self.key_prior.get(int(k), zero) for k in self.key])

    def _forced_or(self, forced: int | None, type_mask: torch.Tensor) -> torch.Tensor:
        if forced is None:
            return type_mask
        out = torch.zeros(self.vocab_size, dtype=torch.bool)
        out[forced] = True
        return out
