"""The symbolic generator through Studio, on a tiny random checkpoint: exact controls, seeds, continuation."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import symusic

from cadenza.conditioning import Conditioning, Sampling
from cadenza.errors import CorruptInput, InvalidConditioning
from cadenza.music.theory import parse_time_signature

MODEL = "tiny-remi"
FAST = dict(max_tokens=160)  # a random model fills every bar it may; a budget keeps each call quick


def gen(studio, **conditioning):
    sampling = conditioning.pop("sampling", Sampling(seed=1, **FAST))
    return studio.generate(MODEL, Conditioning(**conditioning), sampling)


def all_notes(score: symusic.Score) -> list[symusic.Note]:
    return [n for t in score.tracks for n in t.notes]


def note_tuples(track) -> list[tuple[int, int, int, int]]:
    return [(n.time, n.duration, n.pitch, n.velocity) for n in track.notes]


def saved(output, path) -> symusic.Score:
    output.save(path)
    return symusic.Score(path)


def test_num_samples(studio):
    outputs = gen(studio, bars=2, sampling=Sampling(seed=3, num_samples=3, **FAST))
    assert len(outputs) == 3
    assert [o.provenance.sample_index for o in outputs] == [0, 1, 2]
    assert all(o.provenance.seed == 3 and o.provenance.model == MODEL for o in outputs)
    assert all(o.score.note_num() > 0 for o in outputs)


def test_same_seed_same_bytes_different_seed_different(studio, tmp_path):
    a = gen(studio, bars=4, key="E minor", sampling=Sampling(seed=11, **FAST))[0]
    b = gen(studio, bars=4, key="E minor", sampling=Sampling(seed=11, **FAST))[0]
    c = gen(studio, bars=4, key="E minor", sampling=Sampling(seed=12, **FAST))[0]
    for name, out in (("a", a), ("b", b), ("c", c)):
        out.save(tmp_path / f"{name}.mid", sidecar=False)
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()
    assert (tmp_path / "a.mid").read_bytes() != (tmp_path / "c.mid").read_bytes()


def test_unset_seed_is_drawn_and_recorded(studio, tmp_path):
    first = gen(studio, bars=2, sampling=Sampling(**FAST))[0]
    seed = first.provenance.seed
    assert isinstance(seed, int) and seed >= 0
    again = gen(studio, bars=2, sampling=Sampling(seed=seed, **FAST))[0]
    first.save(tmp_path / "1.mid", sidecar=False)
    again.save(tmp_path / "2.mid", sidecar=False)
    assert (tmp_path / "1.mid").read_bytes() == (tmp_path / "2.mid").read_bytes()


def test_provenance_sidecar(studio, tmp_path):
    out = gen(studio, bars=2, key="D major", sampling=Sampling(seed=5, **FAST))[0]
    out.save(tmp_path / "x.mid")
    sidecar = json.loads((tmp_path / "x.mid.json").read_text())
    assert sidecar["model"] == MODEL and sidecar["family"] == "symbolic" and sidecar["seed"] == 5
    assert sidecar["checkpoint_sha256"] == studio.spec(MODEL).sha256 and len(sidecar["checkpoint_sha256"]) == 64
    assert sidecar["conditioning"] == {"key": "D major", "bars": 2}
    assert sidecar["sampling"]["seed"] == 5 and sidecar["notes"]["key"] == "D major"


@pytest.mark.parametrize("tempo", [97.3, 40, 250])
def test_tempo_is_written_exactly(studio, tmp_path, tempo):
    out = gen(studio, bars=2, tempo_bpm=tempo)[0]
    score = saved(out, tmp_path / "t.mid")
    assert len(score.tempos) == 1
    assert score.tempos[0].time == 0 and abs(score.tempos[0].qpm - tempo) < 1e-3
    assert out.provenance.notes["tempo_bpm"] == tempo


def test_style_tempo_when_unset(studio, tmp_path):
    from cadenza.generators.symbolic.generator import STYLE_TEMPO

    out = gen(studio, bars=2, style="chorale")[0]
    score = saved(out, tmp_path / "s.mid")
    assert out.provenance.notes["style"] == "chorale"
    assert abs(score.tempos[0].qpm - STYLE_TEMPO["chorale"]) < 1e-3


@pytest.mark.parametrize("meter, bars, seed", [("6/8", 4, 0), ("3/4", 3, 1), ("2/4", 5, 2), ("4/4", 2, 3), ("9/8", 1, 4)])
def test_meter_and_bar_count_are_exact(studio, tmp_path, meter, bars, seed):
    out = gen(studio, bars=bars, time_signature=meter, sampling=Sampling(seed=seed, temperature=1.5))[0]
    assert out.provenance.notes["time_signature"] == meter
    assert out.provenance.notes["bars"] == bars and out.provenance.notes["bars_written"] == bars
    score = saved(out, tmp_path / "m.mid")
    assert [(ts.numerator, ts.denominator) for ts in score.time_signatures] == [
        tuple(int(x) for x in meter.split("/"))]
    bar_ticks = parse_time_signature(meter).quarters_per_bar * score.ticks_per_quarter
    notes = all_notes(score)
    assert notes
    assert max(n.time + n.duration for n in notes) <= bars * bar_ticks  # nothing rings past the last bar
    assert min(n.time for n in notes) >= 0


def test_instrument_sets_the_program(studio, tmp_path):
    score = saved(gen(studio, bars=2, instruments=("violin",))[0], tmp_path / "v.mid")
    assert [t.program for t in score.tracks] == [40]
    default = gen(studio, bars=2)[0].score
    assert [t.program for t in default.tracks] == [0]


def test_two_instruments_split_voices(studio):
    one = gen(studio, bars=3, sampling=Sampling(seed=21, **FAST))[0].score
    two = gen(studio, bars=3, instruments=("violin", "cello"), sampling=Sampling(seed=21, **FAST))[0].score
    assert [(t.name, t.program) for t in two.tracks] == [("violin", 40), ("cello", 42)]
    assert all(len(t.notes) for t in two.tracks), "the random model writes chords, so both voices get notes"
    # Same seed, same music: the two tracks together hold exactly the notes of the one-track version.
    key = lambda n: (n.time, n.duration, n.pitch)  # noqa: E731
    assert Counter(map(key, all_notes(two))) == Counter(map(key, all_notes(one)))
    # At each onset the top note goes to the first instrument.
    upper = {}
    for n in two.tracks[0].notes:
        upper.setdefault(n.time, []).append(n.pitch)
    assert len(two.tracks[0].notes) == len(upper), "voice 0 takes one note per onset"
    for n in two.tracks[1].notes:
        assert n.pitch <= upper[n.time][0]


def test_unknown_instrument_raises(studio):
    with pytest.raises(InvalidConditioning, match="kazoo"):
        gen(studio, bars=2, instruments=("kazoo",))


def test_unknown_style_raises(studio):
    with pytest.raises(InvalidConditioning, match="bebop"):
        gen(studio, bars=2, style="bebop")


def test_meter_the_model_does_not_write_raises(studio):
    with pytest.raises(InvalidConditioning, match="5/8"):
        gen(studio, bars=2, time_signature="5/8")


def test_text_controls(studio, tmp_path):
    out = gen(studio, text="a jig in G major, 4 bars")[0]
    notes = out.provenance.notes
    assert (notes["time_signature"], notes["key"], notes["style"], notes["bars_written"]) == ("6/8", "G major", "irish", 4)
    score = saved(out, tmp_path / "jig.mid")
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (6, 8)


def test_text_instrument(studio):
    out = gen(studio, text="a waltz for flute, 2 bars")[0]
    assert [t.program for t in out.score.tracks] == [73]
    assert out.provenance.notes["time_signature"] == "3/4"


def test_text_contradicting_a_field_raises(studio):
    with pytest.raises(InvalidConditioning, match="key"):
        gen(studio, text="a jig in G major", key="D major")
    with pytest.raises(InvalidConditioning, match="time_signature"):
        gen(studio, text="a waltz", time_signature="4/4")


def test_text_agreeing_with_a_field_is_fine(studio):
    out = gen(studio, text="a jig in G major, 2 bars", key="G major")[0]
    assert out.provenance.notes["key"] == "G major"


# ---- continuation --------------------------------------------------------------------------------------

PROMPT_NOTES = [(0, 480, 62, 90), (480, 240, 64, 89), (720, 240, 66, 88), (960, 480, 67, 87), (1440, 480, 69, 86),
                (1920, 960, 71, 85), (2400, 480, 74, 84), (2880, 480, 72, 83)]  # 3 bars of 3/4 at 480 tpq


@pytest.fixture
def prompt_file(midi_file):
    return midi_file("prompt.mid", notes=PROMPT_NOTES, tpq=480, qpm=100, time_signature=(3, 4), program=40)


def test_continuation_keeps_the_prompt_exactly(studio, tmp_path, prompt_file):
    prompt = symusic.Score(prompt_file)
    outputs = studio.generate(MODEL, Conditioning(prompt=prompt_file, bars=2), Sampling(seed=3, num_samples=2))
    for index, out in enumerate(outputs):
        result = saved(out, tmp_path / f"cont-{index}.mid")
        assert result.ticks_per_quarter == prompt.ticks_per_quarter
        assert note_tuples(result.tracks[0]) == note_tuples(prompt.tracks[0])  # bit-exact, same resolution
        assert result.tracks[0].program == 40
        assert [(ts.numerator, ts.denominator) for ts in result.time_signatures] == [(3, 4)]
        assert abs(result.tempos[0].qpm - 100) < 1e-3
        assert out.provenance.notes["continued_bars"] == 3 and out.provenance.notes["bars_written"] == 2
        assert out.provenance.notes["time_signature"] == "3/4"
        bar = 3 * prompt.ticks_per_quarter
        new = [n for t in result.tracks[1:] for n in t.notes]
        assert new, "the continuation wrote notes"
        assert min(n.time for n in new) >= 3 * bar  # after the prompt's last bar
        assert max(n.time + n.duration for n in new) <= 5 * bar  # exactly 2 more bars
        assert all(t.program == 40 for t in result.tracks)  # the prompt's instrument carries on


def test_continuation_is_reproducible(studio, tmp_path, prompt_file):
    paths = []
    for i in range(2):
        out = studio.generate(MODEL, Conditioning(prompt=prompt_file, bars=1), Sampling(seed=9, **FAST))[0]
        paths.append(out.save(tmp_path / f"r{i}.mid", sidecar=False))
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_continuation_with_another_meter_raises(studio, prompt_file):
    with pytest.raises(InvalidConditioning, match="3/4"):
        studio.generate(MODEL, Conditioning(prompt=prompt_file, time_signature="6/8", bars=2), Sampling(seed=0))


def test_continuation_with_matching_meter_is_fine(studio, prompt_file):
    out = studio.generate(MODEL, Conditioning(prompt=prompt_file, time_signature="3/4", bars=1), Sampling(seed=0, **FAST))[0]
    assert out.provenance.notes["time_signature"] == "3/4"


def test_corrupt_prompt_raises(tmp_path):
    path = tmp_path / "bad.mid"
    path.write_bytes(b"MThd\x00\x00\x00\x06garbage-garbage")
    with pytest.raises(CorruptInput):
        Conditioning(prompt=path, bars=2)


def test_audio_prompt_is_heard_by_studio_not_by_the_model(studio, tmp_path):
    """The model takes MIDI prompts only; Studio hears a recording as notes first (hum to tune), and a
    recording with no notes in it is refused with the reason."""
    import numpy as np
    import soundfile

    from cadenza.conditioning import require_supported
    from cadenza.errors import InvalidConditioning, UnsupportedConditioning

    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(800, dtype=np.float32), 8000)
    with pytest.raises(UnsupportedConditioning, match="prompt_audio"):
        require_supported(Conditioning(prompt=wav, bars=2), studio.spec(MODEL).capabilities, MODEL)
    with pytest.raises(InvalidConditioning, match="too short|silent"):
        studio.generate(MODEL, Conditioning(prompt=wav, bars=2))


def test_continuation_tempo_matches_the_file(studio, tmp_path, midi_file):
    # A prompt without tempo events plays at the MIDI default of 120 BPM: the provenance must say so.
    bare = midi_file("bare.mid", notes=PROMPT_NOTES, tpq=480, time_signature=(3, 4))
    out = studio.generate(MODEL, Conditioning(prompt=bare, bars=1), Sampling(seed=0, **FAST))[0]
    result = saved(out, tmp_path / "bare-out.mid")
    played_qpm = [t.qpm for t in result.tempos] or [120.0]
    assert all(abs(q - out.provenance.notes["tempo_bpm"]) < 1e-3 for q in played_qpm)


def test_continuation_with_an_explicit_tempo_writes_it(studio, tmp_path, prompt_file):
    out = studio.generate(MODEL, Conditioning(prompt=prompt_file, bars=1, tempo_bpm=150), Sampling(seed=0, **FAST))[0]
    result = saved(out, tmp_path / "fast.mid")
    assert out.provenance.notes["tempo_bpm"] == 150
    assert [round(t.qpm, 3) for t in result.tempos] == [150.0]


# ---- long pieces and small windows ---------------------------------------------------------------------

def test_more_bars_than_one_window_holds(studio, tmp_path, monkeypatch):
    import cadenza.generators.symbolic.generator as generator_module

    calls = []
    real_decode = generator_module.decode
    monkeypatch.setattr(generator_module, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    # A random model fills bars densely (up to its style's notes-per-bar cap), so these bars cannot all fit
    # in the tiny model's 1024-token window.
    out = gen(studio, bars=40, time_signature="2/4", sampling=Sampling(seed=2, key_bias=0.0))[0]
    assert len(calls) > 1, "the piece was written in more than one window"
    assert out.provenance.notes["bars_written"] == 40
    score = saved(out, tmp_path / "long.mid")
    bar_ticks = parse_time_signature("2/4").quarters_per_bar * score.ticks_per_quarter
    assert max(n.time + n.duration for n in all_notes(score)) <= 40 * bar_ticks
    assert max(n.time for n in all_notes(score)) >= 39 * bar_ticks  # the last window wrote the last bar


def test_max_tokens_is_honoured(studio):
    with pytest.raises(InvalidConditioning, match="max_tokens"):
        gen(studio, bars=16, sampling=Sampling(seed=0, max_tokens=20))


def test_small_window_model_writes_many_bars(tmp_path, make_tiny_checkpoint):
    from cadenza.studio import Studio

    make_tiny_checkpoint(tmp_path / "small", name="small", max_seq_len=128)
    out = Studio(model_dirs=[tmp_path]).generate("small", Conditioning(bars=4), Sampling(seed=0))[0]
    assert out.provenance.notes["bars_written"] == 4


def test_continuation_keeps_the_prompt_tempo_map(studio, tmp_path, score_of):
    # A ritardando written into the prompt (120 -> 110 BPM) must survive a continuation without a tempo.
    prompt = score_of(PROMPT_NOTES, tpq=480, qpm=120, time_signature=(3, 4))
    prompt.tempos.append(symusic.Tempo(1440, 110.0))
    path = tmp_path / "rit.mid"
    prompt.dump_midi(str(path))
    before = [(t.time, t.mspq) for t in symusic.Score(path).tempos]
    out = studio.generate(MODEL, Conditioning(prompt=path, bars=1), Sampling(seed=0, **FAST))[0]
    result = saved(out, tmp_path / "rit-out.mid")
    assert [(t.time, t.mspq) for t in result.tempos] == before
    assert out.provenance.notes["tempo_bpm"] == pytest.approx(110, abs=1e-3)


def test_key_bias_keeps_pitches_in_scale_and_can_be_turned_off(studio):
    from cadenza.music.theory import parse_key

    scale = set(parse_key("Eb major").scale_pitch_classes())

    def outside(sampling):
        out = gen(studio, bars=4, key="Eb major", sampling=sampling)[0]
        pitches = [n.pitch % 12 for n in all_notes(out.score)]
        return sum(p not in scale for p in pitches) / len(pitches)

    # A random model ignores the key: about 5/12 of its notes fall outside the scale without the bias.
    assert outside(Sampling(seed=5, key_bias=0.0, **FAST)) > 0.2
    assert outside(Sampling(seed=5, key_bias=20.0, **FAST)) == 0.0


def test_key_bias_out_of_range_is_refused():
    with pytest.raises(InvalidConditioning, match="key_bias"):
        Sampling(key_bias=-1.0)


def test_requested_key_picks_among_candidates():
    """With a key asked for, several candidates are written per output and one in that key is kept."""

    from cadenza.generators.symbolic.generator import SymbolicGenerator
    from cadenza.music.theory import parse_key

    key = parse_key("A minor")
    in_key = [60, 62, 64, 69, 71, 72, 74, 76, 69, 69]  # A natural minor, A held longest
    out_of_key = [61, 63, 66, 68, 70, 61, 66]

    class Stub(SymbolicGenerator):
        def __init__(self, bodies_notes):
            self.notes = bodies_notes

    class Tok:
        pad_id, eos_id = -1, -2

        def __init__(self, notes):
            self.notes = notes

        def decode_body(self, ids):
            score = symusic.Score(480)
            track = symusic.Track()
            for i, p in enumerate(self.notes[ids[0]]):
                track.notes.append(symusic.Note(i * 480, 480 if p != 69 else 960, p, 80))
            score.tracks.append(track)
            return score

    bodies = [[0], [1], [1], [0], [0], [1]]  # two outputs x three candidates; ids name a note list
    stub = Stub(None)
    stub.tokenizer = Tok({0: out_of_key, 1: in_key})
    rows, matched = stub._pick_in_key(bodies, key, 3)
    assert rows == [1, 5] and matched == [True, True]
    stub.tokenizer = Tok({0: out_of_key, 1: out_of_key})
    rows, matched = stub._pick_in_key([[0], [0], [0]], key, 3)
    assert len(rows) == 1 and matched == [False]
    # of two in the key that end on its tonic, the one whose key is clearer (larger margin over the next key)
    clearer = [60, 64, 67, 72, 69, 71, 74, 76, 67, 60, 69]
    stub.tokenizer = Tok({0: out_of_key, 1: in_key, 2: clearer})
    assert stub._pick_in_key([[1], [2], [0]], key, 3) == ([1], [True])
    assert stub._pick_in_key([[2], [1], [0]], key, 3) == ([0], [True])


def test_candidates_and_bias_are_recorded(studio):
    from cadenza.generators.symbolic.generator import KEY_CANDIDATES, SHORT_KEY_CANDIDATES, key_candidates

    keyed = gen(studio, bars=2, key="D major")[0]
    assert keyed.provenance.notes["key_candidates"] == SHORT_KEY_CANDIDATES  # a batch of candidates per output
    assert key_candidates(2) == key_candidates(8) == SHORT_KEY_CANDIDATES > KEY_CANDIDATES == key_candidates(9)
    assert isinstance(keyed.provenance.notes["in_requested_key"], bool)
    assert keyed.provenance.notes["key_bias"] > 0
    free = gen(studio, bars=2)[0]  # no key asked for: the model's own key, unbiased, one candidate
    assert free.provenance.notes["key_bias"] == 0.0 and "key_candidates" not in free.provenance.notes


def test_ends_on_reads_the_lowest_note_struck_last():
    import symusic

    from cadenza.generators.symbolic.generator import ends_on

    score = symusic.Score(480)
    track = symusic.Track(program=0)
    for time, pitch in ((0, 64), (480, 67), (960, 72), (960, 60)):  # the last chord: C over C
        track.notes.append(symusic.Note(time, 480, pitch, 80))
    score.tracks.append(track)
    assert ends_on(score, 0) and not ends_on(score, 7)
    assert not ends_on(symusic.Score(480), 0)
