"""Writing bars after a context, window by window, and laying a piece out by its form plan.

Used by the symbolic generator: a new section is written in the context of everything before it, a
repeated one is copied, and a second ending is written anew by infilling with the music after it in view.
"""

from __future__ import annotations

from typing import Callable

import torch

from cadenza.engine.decode import DecodeParams
from cadenza.errors import InvalidConditioning
from cadenza.generators.symbolic.infill import MIDDLE_TOKENS_PER_BAR, InfillRequest, infill_context
from cadenza.music.form import FormPlan
from cadenza.tokenizers.remi import RemiTokenizer
from cadenza.tokenizers.remi_grammar import NEED_BAR, GrammarSpec, RemiGrammar

CONTEXT_TOKENS = 384  # tokens of earlier bars a continuation window sees (the rest of the window is new music)
SECOND_ENDING_TRIES = 4  # draws of a second ending before one equal to the first ending is accepted


class BarWriter:
    """Writes bars after a context, window by window, and lays a piece out by its form plan."""

    def __init__(self, decode: Callable[[torch.Tensor, DecodeParams, RemiGrammar], torch.Tensor], tok: RemiTokenizer,
                 params: Callable[[int], DecodeParams], window: int, token_cap: int, key_bias: float,
                 straight: bool | None = None) -> None:
        """``decode(prompt [B, T], params, grammar) -> [B, T + new]``: the generator's decode; ``params(limit)``
        the sampling settings of the call for a budget of ``limit`` tokens; ``window``: the model's context;
        ``straight``: the grammar's rhythm rule (None: the style's)."""
        self.straight = straight
        self.decode, self.tok, self.params, self.window = decode, tok, params, window
        self.token_cap, self.key_bias = token_cap, key_bias
        self.spent = 0  # tokens decoded for the current row (copied bars are free)

    def write(self, prefix: list[int], history: list[list[int]], count: int, open_end: bool) -> list[int]:
        """``count`` new bars after ``history`` (bars of ids) under the control ``prefix``.

        ``open_end``: the piece goes on after them, so they end at a bar line instead of with EOS.
        """
        tok, new = self.tok, []
        while (done := count_bars(new, tok)) < count:
            context_bars = tail_that_fits(history + tok.split_bars(new), min(CONTEXT_TOKENS, (self.window - 5) // 3))
            context = prefix + [i for bar in context_bars for i in bar]
            left = self.token_cap - self.spent
            limit = min(self.window - len(context), left)
            if limit < 4:
                raise InvalidConditioning(f"max_tokens={self.token_cap} is too small for this piece")
            spec = GrammarSpec(None, None, None, len(context_bars) + count - done, limit,
                               bars_before=len(context_bars), start_state=NEED_BAR, window=limit < left,
                               key_bias=self.key_bias, open_end=open_end, straight=self.straight)
            out = self.decode(torch.tensor([context]), self.params(limit), RemiGrammar(tok, spec))
            chunk = strip_body(out[0, len(context):].tolist(), tok)
            if count_bars(chunk, tok) == 0:
                raise RuntimeError("a generation window added no bar: the grammar's window reserve is too small")
            self.spent += len(chunk)
            new += chunk
        return new

    def realize(self, prefix: list[int], prompt_bars: list[list[int]], body: list[int], plan: FormPlan | None,
                total: int) -> list[int]:
        """The whole body of ``total`` new bars, starting from the ``body`` already written.

        Sections are laid out in order: a new letter is written in the context of everything before it, a
        repeated letter is copied from its first appearance, and a primed one (``A'``) is copied but for
        its last bar, which is written anew (a second ending that differs from the first).
        """
        tok = self.tok
        self.spent = len(body)
        bars = tok.split_bars(body)
        sections = plan.sections if plan else ()
        if not sections:
            owed = total - len(bars)
            return body + (self.write(prefix, prompt_bars + bars, owed, open_end=False) if owed > 0 else [])
        for section in sections:
            end = section.start + section.bars
            if len(bars) >= end:
                continue
            first = plan.first_of(section.letter)
            if first is not section:
                bars += [list(b) for b in bars[first.start:first.start + section.bars - section.primed]]
            owed = end - len(bars)
            if owed <= 0:
                continue
            for attempt in range(SECOND_ENDING_TRIES):
                new = tok.split_bars(self.write(prefix, prompt_bars + bars, owed, open_end=end < total))
                if not (section.primed and first is not section) or new[-1] != bars[first.start + first.bars - 1]:
                    break
            bars += new
        if tok.infill:  # second endings are rewritten knowing the music they lead into
            for section in sections:
                last = section.start + section.bars - 1
                if section.primed and last + 1 < total:
                    first = plan.first_of(section.letter)
                    bars[last] = self.infill_bar(prefix, prompt_bars + bars, len(prompt_bars) + last,
                                                 avoid=bars[first.start + first.bars - 1], current=bars[last])
        return [i for bar in bars for i in bar]

    def infill_bar(self, prefix: list[int], bars: list[list[int]], index: int, avoid: list[int],
                   current: list[int]) -> list[int]:
        """Bar ``index`` of ``bars`` written anew with the bars on both sides in view (fill-in-the-middle);
        a draw equal to ``avoid`` is drawn again, and after SECOND_ENDING_TRIES ``current`` is kept."""
        tok = self.tok
        gap = InfillRequest(index, 1, len(bars), tuple(range(len(bars) + 1)))
        context = infill_context(tok, prefix, bars, gap, self.window)
        limit = min(MIDDLE_TOKENS_PER_BAR, self.window - len(context))
        for _ in range(SECOND_ENDING_TRIES):
            spec = GrammarSpec(None, None, None, 1, limit, start_state=NEED_BAR, key_bias=self.key_bias,
                               straight=self.straight)
            out = self.decode(torch.tensor([context]), self.params(limit), RemiGrammar(tok, spec))
            bar = [i for i in out[0, len(context):].tolist() if i not in (tok.pad_id, tok.eos_id)]
            self.spent += len(bar)
            if bar != avoid:
                return bar
        return current



def count_bars(ids: list[int], tok: RemiTokenizer) -> int:
    return sum(1 for i in ids if i == tok.bar_id)


def strip_body(ids: list[int], tok: RemiTokenizer) -> list[int]:
    """New body ids without EOS/PAD, and without a Bar that only closed a full window."""
    ids = [i for i in ids if i not in (tok.pad_id, tok.eos_id)]
    if ids and ids[-1] == tok.bar_id:
        ids = ids[:-1]
    return ids


def tail_that_fits(bars: list[list[int]], budget: int) -> list[list[int]]:
    """The longest run of final bars whose tokens fit in ``budget``."""
    tail: list[list[int]] = []
    for bar in reversed(bars):
        if sum(len(b) for b in tail) + len(bar) > budget:
            break
        tail.insert(0, bar)
    return tail
