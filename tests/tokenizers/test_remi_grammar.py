"""The REMI grammar as a decode constraint: random models, hot sampling, every sequence is well formed."""

from __future__ import annotations

import math
import random

import pytest
import torch

from cadenza.engine.decode import DecodeParams, decode
from cadenza.generators.symbolic.model import SymbolicTransformer, TransformerConfig
from cadenza.music.theory import parse_time_signature
from cadenza.tokenizers.remi import MAX_BARS_TOKEN
from cadenza.tokenizers.remi_grammar import NEED_BAR, GrammarSpec, RemiGrammar
from cadenza.tokenizers.styles import STYLE_LIMITS


@pytest.fixture(scope="module")
def models(tokenizer):
    """A near-uniform random model (init std 0.02) and a peaked one (weights x 20): two kinds of stress."""
    out = []
    for seed, scale in ((0, 1.0), (1, 20.0)):
        torch.manual_seed(seed)
        model = SymbolicTransformer(TransformerConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2,
                                                      ffn_dim=64, max_seq_len=1024)).eval()
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.mul_(scale)
        out.append(model)
    return out


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def check_body(tok, body: list[int], meter: str, total_bars: int, bars_before: int = 0, notes_before: int = 0,
               style: str | None = None) -> dict:
    """Walk a generated REMI body (after the controls) and assert every rule of the grammar (with a
    ``style``, also its limits: pitches per onset, notes per bar, the straight grid)."""
    name = lambda i: tok.id_to_token[i]  # noqa: E731
    assert tok.eos_id in body, "the sequence must end with EOS"
    end = body.index(tok.eos_id)
    assert all(i == tok.pad_id for i in body[end + 1:]), "only PAD may follow EOS"
    body = body[:end]
    ppb = tok.positions_per_bar(parse_time_signature(meter))
    bars, notes, position, expect = bars_before, notes_before, -1, "bar"
    limits = STYLE_LIMITS[style] if style else None
    ts = parse_time_signature(meter)
    bar_cap = math.ceil(limits.notes_per_quarter * ts.quarters_per_bar - 1e-9) if limits else None
    grid = {2: 3, 4: 3, 8: 6, 16: 12}[ts.denominator] if limits and limits.straight else 1
    onset, bar_notes = [], 0
    for i, token_id in enumerate(body):
        token = name(token_id)
        kind = token.split("_")[0]
        if expect == "timesig":
            assert token == f"TimeSig_{meter}", f"Bar must be followed by TimeSig_{meter}, got {token} at {i}"
            expect = "in_bar"
        elif expect == "pitch":
            assert kind == "Pitch", f"Position must be followed by a Pitch, got {token} at {i}"
            notes += 1
            onset, bar_notes = [token_id], bar_notes + 1
            expect = "duration"
        elif expect == "duration":
            assert kind == "Duration", f"Pitch must be followed by a Duration, got {token} at {i}"
            if limits:
                whole, sub, res = (int(x) for x in token.split("_")[1].split("."))
                assert (whole * 12 + sub * 12 // res) % grid == 0, f"{token} off the {style} grid at {i}"
            expect = "after_note"
        elif kind == "Bar":
            assert expect in ("bar", "in_bar", "after_note"), f"Bar at {i} in state {expect}"
            bars += 1
            position, expect, bar_notes = -1, "timesig", 0
        elif kind == "Position":
            assert expect in ("in_bar", "after_note"), f"Position at {i} in state {expect}"
            value = int(token.split("_")[1])
            assert position < value < ppb, f"Position {value} after {position} in a bar of {ppb} positions"
            assert value % grid == 0, f"Position {value} off the {style} grid"
            position, expect = value, "pitch"
        elif kind == "Pitch":
            assert expect == "after_note", f"a chord Pitch must follow a Duration ({token} at {i})"
            assert token_id not in onset, f"{token} written twice at one onset ({i})"
            notes += 1
            onset, bar_notes = onset + [token_id], bar_notes + 1
            expect = "duration"
        else:
            raise AssertionError(f"unexpected token {token} at {i} in state {expect}")
        if limits:
            assert len(onset) <= limits.notes_per_onset, f"{len(onset)} notes on one onset in {style} ({i})"
            assert bar_notes <= bar_cap, f"{bar_notes} notes in a bar of {style} in {meter} (cap {bar_cap})"
    assert expect in ("in_bar", "after_note", "bar"), f"sequence ends inside a note/bar header ({expect})"
    assert bars == total_bars, f"{bars} Bar tokens, asked for {total_bars}"
    assert notes >= 1, "no notes were written"
    return {"bars": bars, "notes": notes}


def run(tok, model, spec: GrammarSpec, seed: int, n: int = 2, temperature: float = 1.5) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    params = DecodeParams(max_new_tokens=spec.max_new_tokens, temperature=temperature, eos_id=tok.eos_id,
                          pad_id=tok.pad_id, rng=rng)
    bos = torch.full((n, 1), tok.bos_id, dtype=torch.long)
    return decode(model, bos, params, constraint=RemiGrammar(tok, spec))


@pytest.mark.parametrize("meter", ["2/4", "3/4", "4/4", "6/8"])
@pytest.mark.parametrize("bars", [1, 3, 8])
def test_forced_meter_sequences_follow_the_grammar(tokenizer, models, meter, bars):
    tok = tokenizer
    meter_id = tok.vocab[f"Meter_{meter}"]
    for seed, model in enumerate(models):
        spec = GrammarSpec(style_id=None, key_id=None, meter_id=meter_id, total_bars=bars, max_new_tokens=4 + 30 * bars)
        for row in run(tok, model, spec, seed=seed + 10 * bars).tolist():
            assert row[0] == tok.bos_id
            style, key, meter_tok, bars_tok = (tok.id_to_token[i] for i in row[1:5])
            assert style.startswith("Style_") and key.startswith("Key_")
            assert meter_tok == f"Meter_{meter}" and bars_tok == f"Bars_{bars}"
            check_body(tok, row[5:], meter, bars)


def test_forced_style_and_key_appear_in_the_prefix(tokenizer, models):
    tok = tokenizer
    style_id, key_id, meter_id = tok.vocab["Style_chorale"], tok.vocab["Key_F#_minor"], tok.vocab["Meter_3/4"]
    spec = GrammarSpec(style_id, key_id, meter_id, total_bars=2, max_new_tokens=80)
    for model in models:
        for row in run(tok, model, spec, seed=5, n=3).tolist():
            assert row[1:5] == [style_id, key_id, meter_id, tok.vocab["Bars_2"]]
            check_body(tok, row[5:], "3/4", 2)


@pytest.mark.parametrize("seed", range(4))
def test_free_controls_follow_the_chosen_meter(tokenizer, models, seed):
    tok = tokenizer
    spec = GrammarSpec(None, None, None, total_bars=4, max_new_tokens=120)
    for row in run(tok, models[seed % 2], spec, seed=seed, n=2).tolist():
        meter = tok.value_of(row[3])
        assert tok.id_to_token[row[3]].startswith("Meter_") and meter in tok.meters()
        check_body(tok, row[5:], meter, 4)


@pytest.mark.parametrize("bars", [1, 4, 8])
def test_tight_budget_still_gives_exact_bars(tokenizer, models, bars):
    tok = tokenizer
    # 4 controls + Bar/TimeSig per bar + one note + EOS, and only a couple of tokens to spare.
    budget = 4 + 2 * bars + 3 + 1 + 2
    spec = GrammarSpec(None, None, tok.vocab["Meter_6/8"], total_bars=bars, max_new_tokens=budget)
    for seed, model in enumerate(models):
        out = run(tok, model, spec, seed=seed, n=4)
        assert out.shape[1] <= 1 + budget
        for row in out.tolist():
            check_body(tok, row[5:], "6/8", bars)


def test_bars_over_the_token_limit_use_the_last_bars_token(tokenizer, models):
    tok = tokenizer
    bars = MAX_BARS_TOKEN + 2
    spec = GrammarSpec(None, None, tok.vocab["Meter_2/4"], total_bars=bars, max_new_tokens=4 + 2 * bars + 40)
    row = run(tok, models[1], spec, seed=0, n=1)[0].tolist()
    assert tok.id_to_token[row[4]] == f"Bars_{MAX_BARS_TOKEN}"
    check_body(tok, row[5:], "2/4", bars)


def test_continuation_counts_prompt_bars(tokenizer, models, score_of):
    tok = tokenizer
    prompt_score = score_of([(0, 480, 62, 80), (480, 480, 66, 80), (1440, 480, 69, 80)], time_signature=(3, 4))
    prompt_body = tok.encode_body(prompt_score)
    prompt_bars = len(tok.split_bars(prompt_body))
    assert prompt_bars == 2
    prefix = [tok.bos_id, tok.vocab["Style_irish"], tok.vocab["Key_D_major"], tok.vocab["Meter_3/4"], tok.vocab["Bars_5"]]
    context = torch.tensor([prefix + prompt_body] * 2)
    spec = GrammarSpec(None, None, None, total_bars=5, max_new_tokens=90, bars_before=prompt_bars, start_state=NEED_BAR)
    params = DecodeParams(max_new_tokens=90, temperature=1.5, eos_id=tok.eos_id, pad_id=tok.pad_id,
                          rng=torch.Generator().manual_seed(0))
    out = decode(models[0], context, params, constraint=RemiGrammar(tok, spec))
    for row in out[:, context.shape[1]:].tolist():
        check_body(tok, row, "3/4", 5, bars_before=prompt_bars, notes_before=3)


def test_continuation_prompt_without_meter_is_refused(tokenizer):
    grammar = RemiGrammar(tokenizer, GrammarSpec(None, None, None, 2, 20, start_state=NEED_BAR))
    with pytest.raises(ValueError, match="Meter"):
        grammar.start(1, torch.tensor([[tokenizer.bos_id, tokenizer.bar_id]]))


def test_checker_catches_broken_sequences(tokenizer):
    """The checker itself must fail on sequences that break the grammar (else the tests above prove nothing)."""
    tok = tokenizer
    v = tok.vocab
    good = [tok.bar_id, v["TimeSig_4/4"], v["Position_0"], v["Pitch_60"], v["Duration_1.0.12"], tok.eos_id]
    check_body(tok, good, "4/4", 1)
    broken = {
        "no EOS": good[:-1],
        "wrong TimeSig": [tok.bar_id, v["TimeSig_3/4"]] + good[2:],
        "falling positions": good[:-1] + [v["Position_0"], v["Pitch_62"], v["Duration_1.0.12"], tok.eos_id],
        "position past bar": [tok.bar_id, v["TimeSig_2/4"], v["Position_30"], v["Pitch_60"], v["Duration_1.0.12"], tok.eos_id],
        "pitch without duration": good[:4] + [tok.eos_id],
        "too many bars": [tok.bar_id, v["TimeSig_4/4"]] + good,
        "no notes": [tok.bar_id, v["TimeSig_4/4"], tok.eos_id],
    }
    for reason, seq in broken.items():
        meter = "2/4" if "past bar" in reason else "4/4"
        with pytest.raises(AssertionError):
            check_body(tok, seq, meter, 1)
            pytest.fail(f"checker accepted: {reason}")


def test_cached_mask_rows_do_not_leak_between_rows_or_steps(tokenizer):
    """Mask rows are cached per grammar state: what the caller gets must be its own tensor, and two rows
    in different states must get different rows."""
    tok = tokenizer
    grammar = RemiGrammar(tok, GrammarSpec(None, None, tok.vocab["Meter_4/4"], 2, 40, start_state=NEED_BAR))
    grammar.start(2, torch.tensor([[tok.bos_id, tok.vocab["Meter_4/4"]]]))
    first = grammar.mask(0)
    assert first.shape == (2, len(tok)) and torch.equal(first[0], first[1]) and bool(first[0, tok.bar_id])
    first[:] = False  # the caller may scribble on its mask
    assert bool(grammar.mask(0)[0, tok.bar_id])
    grammar.advance(torch.tensor([tok.bar_id, tok.bar_id]))
    grammar.advance(torch.tensor([tok.vocab["TimeSig_4/4"], tok.vocab["TimeSig_4/4"]]))
    grammar.advance(torch.tensor([tok.vocab["Position_0"], tok.vocab["Position_4"]]))
    grammar.advance(torch.tensor([tok.vocab["Pitch_60"], tok.vocab["Pitch_62"]]))
    grammar.advance(torch.tensor([tok.vocab["Duration_1.0.12"], tok.vocab["Duration_1.0.12"]]))
    rows = grammar.mask(5)
    assert bool(rows[0, tok.vocab["Position_2"]]) and not bool(rows[1, tok.vocab["Position_2"]])
    assert not grammar.done().any()


def adversarial_walk(tok, spec: GrammarSpec, seed: int) -> list[int]:
    """Drive the grammar as a model that piles notes on would: a Pitch whenever one is allowed, else a
    Position, else a Bar, else EOS (random among the allowed of that kind). Returns the ids written."""
    rng = random.Random(seed)
    grammar = RemiGrammar(tok, spec)
    grammar.start(1, torch.tensor([[tok.bos_id]]))
    kinds = [tok.ids_of_type("Pitch"), tok.ids_of_type("Position"), [tok.bar_id], [tok.eos_id]]
    out = []
    for step in range(spec.max_new_tokens):
        allowed = grammar.mask(step)[0]
        if int(allowed.sum()) == 1 or not any(bool(allowed[k].any()) for k in kinds):
            choice = int(torch.nonzero(allowed)[rng.randrange(int(allowed.sum()))])
        else:
            ids = next(k for k in kinds if bool(allowed[k].any()))
            choice = rng.choice([i for i in ids if bool(allowed[i])])
        out.append(choice)
        grammar.advance(torch.tensor([choice]))
        if bool(grammar.done()[0]):
            break
    return out


@pytest.mark.parametrize("style", sorted(STYLE_LIMITS))
def test_no_pileups_in_any_meter_or_bar_count(tokenizer, style):
    """Property: whatever the model prefers, every meter, bar counts 1-64, many seeds: no onset above the
    style's cap, no pitch twice at an onset, no bar above its notes cap, straight styles on the grid."""
    tok = tokenizer
    rng = random.Random(style)
    for meter in tok.meters():
        for seed in range(3):
            bars = rng.choice([1, 2, 3, rng.randint(4, 64)])
            spec = GrammarSpec(tok.vocab[f"Style_{style}"], None, tok.vocab[f"Meter_{meter}"], bars,
                               max_new_tokens=4 + bars * 200)
            row = adversarial_walk(tok, spec, seed)
            check_body(tok, row[4:], meter, bars, style=style)


def test_limits_checker_fails_on_a_pileup(tokenizer):
    tok, v = tokenizer, tokenizer.vocab
    chord = [v[f"Pitch_{p}"] if k % 2 == 0 else v["Duration_1.0.12"] for p in (60, 64, 67) for k in range(2)]
    seq = [tok.bar_id, v["TimeSig_4/4"], v["Position_0"]] + chord + [tok.eos_id]
    check_body(tok, seq, "4/4", 1, style="chorale")
    for style, bad in (("irish", seq),  # three notes on one onset
                       ("chorale", seq[:3] + [v["Pitch_60"], v["Duration_1.0.12"]] * 2 + [tok.eos_id]),  # a pitch twice
                       ("irish", [tok.bar_id, v["TimeSig_4/4"], v["Position_4"], v["Pitch_60"], v["Duration_1.0.12"],
                                  tok.eos_id])):  # a triplet position in a straight style
        with pytest.raises(AssertionError):
            check_body(tok, bad, "4/4", 1, style=style)
            pytest.fail(f"checker accepted {style}")


def test_open_end_stops_at_the_next_bar_line(tokenizer, models):
    """A section of a longer piece: the Bar after its last bar ends the call, EOS is never written."""
    tok = tokenizer
    spec = GrammarSpec(tok.vocab["Style_irish"], None, tok.vocab["Meter_6/8"], total_bars=3, max_new_tokens=200,
                       bars_control=16, open_end=True)
    for seed, model in enumerate(models):
        for row in run(tok, model, spec, seed=seed, n=3).tolist():
            assert tok.id_to_token[row[4]] == "Bars_16" and tok.eos_id not in row
            body = [i for i in row[5:] if i != tok.pad_id]
            assert body.count(tok.bar_id) == 4 and body[-1] == tok.bar_id  # the closing Bar is the last token
            check_body(tok, body[:-1] + [tok.eos_id], "6/8", 3, style="irish")
