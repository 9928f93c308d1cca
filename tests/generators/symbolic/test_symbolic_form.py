"""Form plans and bar infilling through the Studio, on the tiny random checkpoint (same path as a real one)."""

from __future__ import annotations

import pytest
import symusic

from cadenza import Conditioning, Sampling
from cadenza.errors import InvalidConditioning
from cadenza.generators.symbolic.infill import InfillRequest, bar_starts, infill_context, splice_bars
from cadenza.music.form import form_exact, parse_form
from cadenza.tokenizers.styles import STYLE_LIMITS

MODEL = "tiny-remi"
FAST = dict(temperature=1.0)


def notes_of(score: symusic.Score, keep=lambda n: True) -> list[tuple]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for t in score.tracks for n in t.notes if keep(n))


@pytest.mark.parametrize("form, bars, meter", [("AABB", 8, "4/4"), ("A A' B B'", 12, "6/8"), ("A2 B3 A2 C1", None, "3/4"),
                                               ("ABAC", 4, "2/4")])
def test_every_repeat_of_a_plan_is_in_the_file(studio, tmp_path, form, bars, meter):
    outputs = studio.generate(MODEL, Conditioning(form=form, bars=bars, time_signature=meter), Sampling(seed=4, num_samples=2))
    plan = parse_form(form, bars)
    for index, out in enumerate(outputs):
        score = symusic.Score(out.save(tmp_path / f"{index}.mid"))
        assert out.provenance.notes["form"] == plan.text and out.provenance.notes["bars_written"] == plan.bars
        assert form_exact(score, plan)


def test_the_style_form_is_used_and_recorded(studio):
    out = studio.generate(MODEL, Conditioning(style="irish", bars=16), Sampling(seed=1))[0]
    assert out.provenance.notes["form"] == "A4 A'4 B4 B'4"
    assert form_exact(out.score, parse_form("A4 A'4 B4 B'4"))
    out = studio.generate(MODEL, Conditioning(style="chorale", bars=8), Sampling(seed=1))[0]
    assert out.provenance.notes["form"] == "through-composed"


def test_form_from_text_and_its_conflicts(studio):
    out = studio.generate(MODEL, Conditioning(text="an AABA tune", bars=8), Sampling(seed=2))[0]
    assert out.provenance.notes["form"] == "A2 A2 B2 A2"
    with pytest.raises(InvalidConditioning, match="form"):
        studio.generate(MODEL, Conditioning(text="an AABA tune", form="ABAB", bars=8), Sampling(seed=2))
    with pytest.raises(InvalidConditioning, match="adds up"):
        Conditioning(form="A8 B8", bars=12)


def test_single_line_styles_keep_to_one_line(studio):
    for style in ("irish", "scottish", "folk-song"):
        for out in studio.generate(MODEL, Conditioning(style=style, bars=6, time_signature="4/4"), Sampling(seed=3, num_samples=2)):
            onsets: dict[int, int] = {}
            for note in out.score.tracks[0].notes:
                onsets[note.time] = onsets.get(note.time, 0) + 1
            assert max(onsets.values()) <= STYLE_LIMITS[style].notes_per_onset


@pytest.fixture
def tune_file(midi_file):
    """Eight bars of 3/4 in two tracks (melody and a bass), at 480 ticks per quarter."""
    notes = [(bar * 1440 + beat * 480, 480, 60 + (bar + beat) % 7, 90) for bar in range(8) for beat in range(3)]
    path = midi_file("tune.mid", notes=notes, tpq=480, qpm=96, time_signature=(3, 4), program=73)
    score = symusic.Score(path)
    bass = symusic.Track(program=32, name="bass")
    for bar in range(8):
        bass.notes.append(symusic.Note(bar * 1440, 2880 if bar == 2 else 1440, 40, 70))  # bar 3's bass rings into bar 4
    score.tracks.append(bass)
    score.dump_midi(str(path))
    return path


def test_regenerate_keeps_every_other_note_bit_exact(studio, tmp_path, tune_file):
    original = symusic.Score(tune_file)
    lo, hi = 4 * 1440, 6 * 1440  # bars 5-6
    outputs = studio.generate(MODEL, Conditioning(prompt=tune_file, regenerate=(5, 6)), Sampling(seed=7, num_samples=2))
    for index, out in enumerate(outputs):
        result = symusic.Score(out.save(tmp_path / f"v{index}.mid"))
        assert result.ticks_per_quarter == 480 and [t.program for t in result.tracks] == [73, 32]
        outside = lambda n: not lo <= n.time < hi  # noqa: E731
        assert notes_of(result, outside) == notes_of(original, outside)
        new = [n for t in result.tracks for n in t.notes if lo <= n.time < hi]
        assert all(n.time + n.duration <= hi for n in new)  # nothing rings into bar 7
        assert out.provenance.notes["regenerated_bars"] == [5, 6] and out.provenance.notes["bars"] == 8


@pytest.mark.parametrize("conditioning, match", [
    (dict(regenerate=(7, 9)), "bars 1-8"), (dict(regenerate=(3, 4), bars=8), "bars"),
    (dict(regenerate=(3, 4), tempo_bpm=90), "tempo_bpm"), (dict(regenerate=(3, 4), form="AB"), "form")])
def test_bad_regenerate_requests_are_refused(studio, tune_file, conditioning, match):
    with pytest.raises(InvalidConditioning, match=match):
        studio.generate(MODEL, Conditioning(prompt=tune_file, **conditioning), Sampling(seed=0))


@pytest.mark.parametrize("span", [(0, 2), (3, 2), (1,), "3-4", (1.5, 2)])
def test_regenerate_needs_a_bar_range_and_a_midi_prompt(tune_file, span):
    with pytest.raises(InvalidConditioning, match="regenerate"):
        Conditioning(prompt=tune_file, regenerate=span)


def test_regenerate_without_a_prompt_is_refused():
    with pytest.raises(InvalidConditioning, match="prompt"):
        Conditioning(regenerate=(1, 2))


def test_bar_starts_follow_meter_changes():
    score = symusic.Score(4)
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    score.time_signatures.append(symusic.TimeSignature(24, 6, 8))
    assert bar_starts(score, 4) == [0, 12, 24, 36, 48]
    assert bar_starts(symusic.Score(4), 2) == [0, 16, 32]  # no time signature: 4/4


def test_infill_context_keeps_the_nearest_bars_when_the_window_is_short(tokenizer):
    tok = tokenizer
    bars = [[tok.bar_id] + [i] * 9 for i in range(100, 110)]  # ten bars of 10 tokens
    gap = InfillRequest(4, 2, 10, tuple(range(11)))
    controls = [tok.bos_id, 1, 2, 3, 4]
    full = infill_context(tok, controls, bars, gap, window=1000)
    assert full == controls + sum(bars[:4], []) + [tok.suffix_id] + sum(bars[6:], []) + tok.infill_ids(2)
    short = infill_context(tok, controls, bars, gap, window=len(controls) + 3 + 2 * 48 + 40)
    assert short == controls + sum(bars[2:4], []) + [tok.suffix_id] + sum(bars[6:8], []) + tok.infill_ids(2)
    with pytest.raises(InvalidConditioning, match="window"):
        infill_context(tok, controls, bars, gap, window=50)


def test_splice_replaces_only_notes_starting_in_the_gap(score_of):
    score = score_of([(0, 480, 60, 90), (480, 960, 62, 90), (960, 480, 64, 90), (1440, 480, 65, 90)], tpq=480,
                     time_signature=(2, 4))
    new = symusic.Score(12)
    track = symusic.Track()
    track.notes.append(symusic.Note(0, 48, 70, 80))  # four quarters long: cut at the gap's end
    new.tracks.append(track)
    gap = InfillRequest(1, 1, 2, (0, 960, 1920))
    out = splice_bars(score, new, gap)
    assert notes_of(out) == [(0, 480, 60, 90), (480, 960, 62, 90), (960, 960, 70, 90)]


def test_splice_never_strikes_the_pitch_of_a_kept_note_still_sounding(score_of, tmp_path):
    """A new note on the pitch of a note ringing into the gap would end that note early once written to a
    MIDI file (note-offs pair with pitches): such a note is left out, so the file keeps the old note whole."""
    score = score_of([(0, 1440, 60, 90), (960, 240, 64, 90)], tpq=480, time_signature=(2, 4))  # C rings into bar 2
    new = symusic.Score(12)
    track = symusic.Track()
    track.notes.append(symusic.Note(0, 6, 60, 80))  # C again, under the ringing one: left out
    track.notes.append(symusic.Note(6, 6, 62, 80))
    new.tracks.append(track)
    out = splice_bars(score, new, InfillRequest(1, 1, 2, (0, 960, 1920)))
    out.dump_midi(str(tmp_path / "out.mid"))
    assert notes_of(symusic.Score(tmp_path / "out.mid")) == [(0, 1440, 60, 90), (1200, 240, 62, 90)]


def test_a_form_for_the_bars_that_continue_a_prompt(studio, tmp_path, tune_file):
    """With a prompt, the plan lays out the new bars after it; the prompt stays exactly as it was."""
    original = symusic.Score(tune_file)
    out = studio.generate(MODEL, Conditioning(prompt=tune_file, form="A A'", bars=4), Sampling(seed=5))[0]
    result = symusic.Score(out.save(tmp_path / "more.mid"))
    assert out.provenance.notes["form"] == "A2 A'2" and out.provenance.notes["continued_bars"] == 8
    start = 8 * 1440
    assert notes_of(result, lambda n: n.time < start and n.pitch != 40) == notes_of(original, lambda n: n.pitch != 40)
    new = symusic.Score(480)
    new.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    track = symusic.Track()
    for note in [n for t in result.tracks for n in t.notes if n.time >= start]:
        track.notes.append(symusic.Note(note.time - start, note.duration, note.pitch, note.velocity))
    new.tracks.append(track)
    assert form_exact(new, parse_form("A2 A'2"))


def off_grid_onsets(score: symusic.Score) -> int:
    """Onsets of a 4/4 score that are not on the sixteenth grid."""
    sixteenth = score.ticks_per_quarter // 4
    return sum(1 for t in score.tracks for n in t.notes if n.time % sixteenth)


def test_straight_styles_stay_on_the_grid_unless_triplets_are_asked_for(studio):
    sampling = Sampling(seed=11, num_samples=3, temperature=1.5)
    straight = studio.generate(MODEL, Conditioning(text="an irish reel", bars=8), sampling)
    assert all(off_grid_onsets(out.score) == 0 for out in straight)
    assert all("triplets" not in out.provenance.notes for out in straight)
    swung = studio.generate(MODEL, Conditioning(text="an irish reel with triplets", bars=8), sampling)
    assert sum(off_grid_onsets(out.score) for out in swung) > 0  # the random model uses the freedom
    assert all(out.provenance.notes["triplets"] is True for out in swung)
