"""Token cache: prepare_dataset on a tiny corpus, whole pieces per split, licence filter, ChunkSampler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cadenza.data.corpus import CorpusEntry, read_manifest
from cadenza.data.splits import split_of
from cadenza.generators.symbolic.dataset import ChunkSampler, TokenCache, bar_histograms, style_of
from cadenza.music.theory import estimate_key
from cadenza.tokenizers.remi import RemiTokenizer


def test_prepare_writes_splits_tokenizer_and_summary(prepared):
    data, summary = prepared
    for name in ("train.npz", "validation.npz", "test.npz", "tokenizer.json", "dataset.json",
                 "train_pieces.txt", "validation_pieces.txt", "test_pieces.txt"):
        assert (data / name).is_file(), name
    assert json.loads((data / "dataset.json").read_text()) == summary
    assert {s: summary["splits"][s]["pieces"] for s in ("train", "validation", "test")} == {
        "train": 4, "validation": 1, "test": 1}
    assert summary["skipped"] == 0
    assert RemiTokenizer.load(data / "tokenizer.json").id_to_token == RemiTokenizer().id_to_token


def test_splits_hold_whole_pieces(prepared):
    data, summary = prepared
    seen = set()
    for split in ("train", "validation", "test"):
        pieces = (data / f"{split}_pieces.txt").read_text().split()
        assert all(split_of(p) == split for p in pieces)
        assert not seen & set(pieces)
        seen |= set(pieces)
        cache = TokenCache(data / f"{split}.npz")
        assert cache.num_pieces == len(pieces)
        assert cache.bar_offsets[-1] == len(cache.tokens) == summary["splits"][split]["tokens"]
        assert cache.piece_bar_offsets[-1] == len(cache.bar_meter) == summary["splits"][split]["bars"]
        assert cache.bar_hist.shape == (len(cache.bar_meter), 12)


def test_noncommercial_is_excluded_by_default(prepared, corpus_dir):
    data, summary = prepared
    pieces = " ".join((data / f"{s}_pieces.txt").read_text() for s in ("train", "validation", "test"))
    assert "essenFolksong" not in pieces
    assert all("non-commercial" not in lic for lic in summary["licenses"])
    assert "essenFolksong" not in summary["collections"]
    assert any(e.collection == "essenFolksong" for e in read_manifest(corpus_dir))  # it was offered


def test_noncommercial_and_copyleft_opt_in(corpus_dir, tmp_path):
    from cadenza.generators.symbolic.dataset import prepare_dataset

    entries = read_manifest(corpus_dir)
    gpl = CorpusEntry(entries[0].path, "josquin", "GPL-2+ (encoder header)")
    summary = prepare_dataset(corpus_dir, tmp_path, entries + [gpl], include_noncommercial=True, workers=1, progress=False)
    assert "essenFolksong" in summary["collections"] and "josquin" not in summary["collections"]
    assert summary["splits"]["train"]["pieces"] == 5


def test_piece_styles_follow_collections(prepared):
    data, _ = prepared
    tok = RemiTokenizer.load(data / "tokenizer.json")
    train = TokenCache(data / "train.npz")
    assert {tok.id_to_token[i] for i in train.piece_style} == {"Style_irish"}
    assert tok.id_to_token[TokenCache(data / "validation.npz").piece_style[0]] == "Style_chorale"
    assert style_of("nobody-knows") == "classical"


def test_bar_histograms_weight_by_duration(tokenizer, score_of):
    score = score_of([(0, 480, 62, 80), (480, 960, 66, 80), (1920, 240, 69, 80)], time_signature=(4, 4))
    bars = tokenizer.split_bars(tokenizer.encode_body(score))
    hist = bar_histograms(tokenizer, bars)
    expected = np.zeros((2, 12), dtype=np.float32)
    expected[0, 2], expected[0, 6], expected[1, 9] = 1.0, 2.0, 0.5
    np.testing.assert_allclose(hist, expected)


@pytest.mark.parametrize("augment", [False, True])
def test_chunk_sampler_sequences(prepared, augment):
    data, _ = prepared
    tok = RemiTokenizer.load(data / "tokenizer.json")
    cache = TokenCache(data / "train.npz")
    sampler = ChunkSampler(cache, tok, seq_len=256, max_bars=6, augment=augment, seed=0)
    for _ in range(25):
        seq = sampler.sample_sequence().tolist()
        assert seq[0] == tok.bos_id and seq[-1] == tok.eos_id
        controls = [tok.id_to_token[i] for i in seq[1:5]]
        assert [c.split("_")[0] for c in controls] == ["Style", "Key", "Meter", "Bars"]
        body = seq[5:-1]
        bars = sum(1 for i in body if i == tok.bar_id)
        assert controls[3] == f"Bars_{bars}" and 1 <= bars <= 6
        assert body[0] == tok.bar_id
        meter = controls[2].split("_", 1)[1]
        assert {tok.id_to_token[i] for i in body if tok.id_to_token[i].startswith("TimeSig_")} == {f"TimeSig_{meter}"}
        assert len(seq) <= 256
        # The key label is the key of the (possibly transposed) notes it describes.
        hist = bar_histograms(tok, tok.split_bars(body)).sum(0)
        assert controls[1] == "Key_" + estimate_key(hist).name.replace(" ", "_")


def test_chunk_sampler_is_seeded(prepared):
    data, _ = prepared
    tok = RemiTokenizer.load(data / "tokenizer.json")
    cache = TokenCache(data / "train.npz")
    a = ChunkSampler(cache, tok, seq_len=128, seed=3).batch(4)
    b = ChunkSampler(cache, tok, seq_len=128, seed=3).batch(4)
    c = ChunkSampler(cache, tok, seq_len=128, seed=4).batch(4)
    assert a.shape == (4, 128) and a.dtype.is_floating_point is False
    assert bool((a == b).all()) and not bool((a == c).all())
    assert bool((a[:, 0] == tok.bos_id).all())


def test_infill_sequences_move_a_gap_of_whole_bars_last(prepared):
    """FIM form: the gap's bars come after Infill_Middle Bars_M, and putting them back gives the plain span."""
    data, _ = prepared
    tok = RemiTokenizer.load(data / "tokenizer.json")
    cache = TokenCache(data / "train.npz")
    plain = ChunkSampler(cache, tok, seq_len=512, max_bars=12, augment=False, seed=5)
    fim = ChunkSampler(cache, tok, seq_len=512, max_bars=12, augment=False, seed=5, infill_rate=1.0)
    gaps = set()
    for _ in range(40):
        plain.rng.bit_generator.state = fim.rng.bit_generator.state  # the same span, drawn both ways
        expected, seq = plain.sample_sequence().tolist(), fim.sample_sequence().tolist()
        assert seq[:5] == expected[:5] and seq[-1] == tok.eos_id
        if tok.suffix_id not in seq:  # a one-bar span has no room for a gap
            assert seq == expected and expected.count(tok.bar_id) == 1
            continue
        s, m = seq.index(tok.suffix_id), seq.index(tok.middle_id)
        before, after, middle = seq[5:s], seq[s + 1:m], seq[m + 2:-1]
        size = middle.count(tok.bar_id)
        assert seq[m + 1] == tok.vocab[f"Bars_{size}"] and 1 <= size <= 8
        assert middle[0] == tok.bar_id and (not after or after[0] == tok.bar_id)
        assert before + middle + after == expected[5:-1]
        assert before or after  # the model always sees some context
        gaps.add((len(before) > 0, len(after) > 0))
    assert gaps == {(True, True), (True, False), (False, True)}  # gaps at the start, middle and end


def test_infill_needs_the_sentinels(prepared):
    data, _ = prepared
    old = RemiTokenizer(infill=False)
    assert len(RemiTokenizer()) == len(old) + 2 and RemiTokenizer().id_to_token[:len(old)] == old.id_to_token
    with pytest.raises(ValueError, match="infilling"):
        ChunkSampler(TokenCache(data / "train.npz"), old, seq_len=128, infill_rate=0.5)
