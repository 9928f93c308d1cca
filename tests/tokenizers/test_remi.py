"""RemiTokenizer: REMI round trip, control tokens, persistence with vocabulary check, transposition."""

from __future__ import annotations

import json

import numpy as np
import pytest
import symusic

from cadenza.errors import CheckpointError, InvalidConditioning
from cadenza.music.theory import parse_key, parse_time_signature
from cadenza.tokenizers.remi import MAX_BARS_TOKEN, STYLES, ControlPrefix, RemiTokenizer

TPQ = 480
STEP = TPQ // 12  # the tokenizer's grid: 1/12 beat


def notes_in_quarters(score: symusic.Score) -> list[tuple[float, float, int]]:
    tpq = score.ticks_per_quarter
    return sorted((n.time / tpq, n.duration / tpq, n.pitch) for t in score.tracks for n in t.notes)


@pytest.fixture
def melody(score_of) -> symusic.Score:
    # On the 1/12-beat grid (16ths, triplet 8ths), durations under 4 beats, a chord, two bars of 4/4.
    notes = [(0, 480, 60, 80), (0, 480, 64, 80), (480, 4 * STEP, 62, 80), (480 + 4 * STEP, 4 * STEP, 64, 80),
             (480 + 8 * STEP, 4 * STEP, 65, 80), (960, 3 * STEP, 67, 80), (960 + 3 * STEP, 9 * STEP, 69, 80),
             (1920, 960, 21, 80), (2400 + STEP, 11 * STEP, 108, 80), (3360, 1440, 72, 80)]
    return score_of(notes, tpq=TPQ, time_signature=(4, 4), qpm=120)


def test_encode_decode_roundtrip(tokenizer, melody):
    body = tokenizer.encode_body(melody)
    assert body and body[0] == tokenizer.bar_id
    assert max(body) < tokenizer.base_vocab_size  # no control tokens in a body
    decoded = tokenizer.decode_body(body)
    assert notes_in_quarters(decoded) == notes_in_quarters(melody)
    assert [(ts.numerator, ts.denominator) for ts in decoded.time_signatures] == [(4, 4)]


def test_onsets_are_quantised_to_twelfth_of_a_beat(tokenizer, score_of):
    off_grid = score_of([(7, 480, 60, 80), (480 + 25, 480, 62, 80)], tpq=TPQ, time_signature=(4, 4))
    decoded = tokenizer.decode_body(tokenizer.encode_body(off_grid))
    assert [t for t, _, _ in notes_in_quarters(decoded)] == [0.0, 1.0 + 1 / 12]


def test_split_bars_cuts_at_bar_tokens(tokenizer, melody):
    body = tokenizer.encode_body(melody)
    bars = tokenizer.split_bars(body)
    assert len(bars) == 2  # the last onset is on beat 7: in the second bar of 4/4
    assert all(bar[0] == tokenizer.bar_id for bar in bars)
    assert [i for bar in bars for i in bar] == body
    assert tokenizer.id_to_token[bars[0][1]] == "TimeSig_4/4"


def test_merge_tracks_drops_drums_and_keeps_meter(tokenizer, score_of):
    score = score_of([(0, 480, 60, 80)], time_signature=(3, 4))
    drums = symusic.Track(program=0, is_drum=True)
    drums.notes.append(symusic.Note(0, 120, 36, 100))
    other = symusic.Track(program=40)
    other.notes.append(symusic.Note(480, 480, 67, 80))
    score.tracks.append(drums)
    score.tracks.append(other)
    merged = tokenizer.merge_tracks(score)
    assert len(merged.tracks) == 1 and [n.pitch for n in merged.tracks[0].notes] == [60, 67]
    assert merged.time_signatures[0].numerator == 3


def test_empty_score_encodes_to_nothing(tokenizer):
    score = symusic.Score(TPQ)
    score.tracks.append(symusic.Track())
    assert tokenizer.encode_body(score) == []


def test_vocabulary_layout(tokenizer):
    assert len(tokenizer) == len(tokenizer.id_to_token) == len(tokenizer.vocab)
    assert tokenizer.id_to_token[tokenizer.bos_id] == "BOS_None" and tokenizer.id_to_token[tokenizer.eos_id] == "EOS_None"
    controls = tokenizer.id_to_token[tokenizer.base_vocab_size:]
    assert all(t.split("_")[0] in ("Style", "Key", "Meter", "Bars") for t in controls[:-2])
    assert controls[-2:] == ["Infill_Suffix", "Infill_Middle"]  # appended last: older vocabularies are a prefix
    assert len(tokenizer.ids_of_type("Key")) == 24 and len(tokenizer.ids_of_type("Style")) == len(STYLES)
    assert len(tokenizer.ids_of_type("Bars")) == MAX_BARS_TOKEN
    assert {"4/4", "3/4", "2/4", "6/8", "9/8"} <= set(tokenizer.meters())
    assert tokenizer.positions_per_bar(parse_time_signature("4/4")) == 48
    assert tokenizer.positions_per_bar(parse_time_signature("6/8")) == 72
    # The Meter controls mirror miditok's TimeSig tokens one for one.
    assert sorted(tokenizer.meters()) == sorted(tokenizer.value_of(i) for i in tokenizer.ids_of_type("TimeSig"))


def test_control_ids(tokenizer):
    ids = tokenizer.control_ids(ControlPrefix("irish", parse_key("D major"), parse_time_signature("6/8"), 16))
    assert [tokenizer.id_to_token[i] for i in ids] == ["BOS_None", "Style_irish", "Key_D_major", "Meter_6/8", "Bars_16"]
    long = tokenizer.control_ids(ControlPrefix("irish", parse_key("D major"), parse_time_signature("6/8"), 200))
    assert tokenizer.id_to_token[long[-1]] == f"Bars_{MAX_BARS_TOKEN}"


def test_control_ids_unknown_meter_or_style_raises(tokenizer):
    with pytest.raises(InvalidConditioning, match="Meter_5/8"):
        tokenizer.control_ids(ControlPrefix("irish", parse_key("D major"), parse_time_signature("5/8"), 4))
    with pytest.raises(InvalidConditioning, match="Style_bebop"):
        tokenizer.control_ids(ControlPrefix("bebop", parse_key("D major"), parse_time_signature("4/4"), 4))


def test_decode_ignores_controls_and_specials(tokenizer, melody):
    body = tokenizer.encode_body(melody)
    prefix = tokenizer.control_ids(ControlPrefix("irish", parse_key("C major"), parse_time_signature("4/4"), 4))
    decoded = tokenizer.decode_body(prefix + body + [tokenizer.eos_id, tokenizer.pad_id])
    assert notes_in_quarters(decoded) == notes_in_quarters(melody)


def test_save_load_equality(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = RemiTokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.id_to_token == tokenizer.id_to_token
    assert loaded.params == tokenizer.params
    assert loaded.to_dict() == tokenizer.to_dict()


def test_load_tampered_vocabulary_raises(tokenizer, tmp_path):
    data = tokenizer.to_dict()
    data["vocab"][10], data["vocab"][11] = data["vocab"][11], data["vocab"][10]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="vocabulary differs"):
        RemiTokenizer.load(tmp_path / "tokenizer.json")


@pytest.mark.parametrize("content", ["{broken", json.dumps({"class": "BPE"}), json.dumps({"class": "RemiTokenizer"})])
def test_load_bad_file_raises(tmp_path, content):
    (tmp_path / "tokenizer.json").write_text(content)
    with pytest.raises(CheckpointError):
        RemiTokenizer.load(tmp_path / "tokenizer.json")


def test_load_missing_file_raises(tmp_path):
    with pytest.raises(CheckpointError):
        RemiTokenizer.load(tmp_path / "nope.json")


def test_transpose_shifts_only_pitches(tokenizer, score_of):
    middle = score_of([(0, 480, 60, 80), (0, 480, 64, 80), (480, 240, 72, 80), (2400, 240, 55, 80)], time_signature=(4, 4))
    body = np.array(tokenizer.encode_body(middle))
    up = tokenizer.transpose(body, 3)
    is_pitch = tokenizer.pitch_of_id[body] >= 0
    np.testing.assert_array_equal(tokenizer.pitch_of_id[up[is_pitch]], tokenizer.pitch_of_id[body[is_pitch]] + 3)
    np.testing.assert_array_equal(up[~is_pitch], body[~is_pitch])
    np.testing.assert_array_equal(tokenizer.transpose(up, -3), body)
    assert body.tolist() == tokenizer.encode_body(middle)  # the input is not modified
    assert sorted(p for _, _, p in notes_in_quarters(tokenizer.decode_body(up.tolist()))) == [58, 63, 67, 75]


def test_transpose_out_of_range_raises(tokenizer, melody):
    body = np.array(tokenizer.encode_body(melody))  # holds pitch 21 (lowest) and 108 (highest)
    with pytest.raises(ValueError, match="range"):
        tokenizer.transpose(body, -1)
    with pytest.raises(ValueError, match="range"):
        tokenizer.transpose(body, 1)
    assert tokenizer.transpose(body, 0).tolist() == body.tolist()


def test_tokenizer_saved_without_infill_tokens_loads_as_such(tmp_path):
    """A tokenizer.json written before the infilling sentinels existed (no "infill" key) still loads."""
    old = RemiTokenizer(infill=False)
    data = old.to_dict()
    del data["infill"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    loaded = RemiTokenizer.load(tmp_path / "tokenizer.json")
    assert not loaded.infill and loaded.id_to_token == old.id_to_token and loaded.middle_id == -1
    with pytest.raises(InvalidConditioning, match="without infilling"):
        loaded.infill_ids(2)
    assert RemiTokenizer().infill_ids(3) == [RemiTokenizer().middle_id, RemiTokenizer().vocab["Bars_3"]]
