"""The captioned audio clips made from corpus MIDI: exact lengths, truthful captions, resumable, seeded."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import symusic

from cadenza.data.audio_corpus import (AudioCorpusConfig, ClipRecord, build_audio_corpus, caption_for, form_of,
                                       read_clips)
from cadenza.errors import CorruptInput, InvalidConditioning


def _tune(path: Path, pitches, tracks: int = 1) -> None:
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))
    score.time_signatures.append(symusic.TimeSignature(0, 6, 8))
    for t in range(tracks):
        track = symusic.Track(program=0)
        for i, p in enumerate(pitches * 6):
            track.notes.append(symusic.Note(i * 240, 240, p - 12 * t, 90))
        score.tracks.append(track)
    score.dump_midi(str(path))


@pytest.fixture
def tiny_corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "midi" / "oneills1850").mkdir(parents=True)
    (root / "midi" / "bach").mkdir(parents=True)
    _tune(root / "midi" / "oneills1850" / "a.mid", [62, 64, 66, 67, 69, 71, 73, 74])
    _tune(root / "midi" / "bach" / "b.mid", [60, 62, 64, 65, 67, 69, 71, 72], tracks=3)
    rows = ["path\tcollection\tlicense", "oneills1850/a.mid\toneills1850\tpd", "bach/b.mid\tbach\tpd"]
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_builds_exact_clips_with_captions(tiny_corpus, tmp_path):
    out = tmp_path / "audio"
    summary = build_audio_corpus(tiny_corpus, out, AudioCorpusConfig(clips=6, clip_s=2.0, sample_rate=16000),
                                 progress=False)
    assert summary["clips"] == 6
    records = read_clips(out)
    assert len(records) == 6 and len({r.id for r in records}) == 6
    for r in records:
        data, sr = soundfile.read(out / r.path)
        assert sr == 16000 and data.shape == (32000,)
        assert np.sqrt(np.mean(data ** 2)) > 1e-3  # not silent
        assert r.key in r.caption and str(round(r.tempo_bpm)) in r.caption
        if r.collection == "bach":
            assert not r.solo
        else:
            assert r.solo and f"solo {r.instruments[0]}" in r.caption and "jig" in r.caption
    assert json.loads((out / "BUILD.json").read_text())["clips"] == 6


def test_resume_continues_and_is_deterministic(tiny_corpus, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_audio_corpus(tiny_corpus, a, AudioCorpusConfig(clips=2, clip_s=1.0), progress=False)
    build_audio_corpus(tiny_corpus, a, AudioCorpusConfig(clips=4, clip_s=1.0), progress=False)
    build_audio_corpus(tiny_corpus, b, AudioCorpusConfig(clips=4, clip_s=1.0), progress=False)
    assert [r.caption for r in read_clips(a)] == [r.caption for r in read_clips(b)]


def test_record_round_trip_and_errors(tmp_path):
    record = ClipRecord(id="1", path="clips/1.flac", caption="c", seconds=1.0, sample_rate=16000, split="train",
                        instruments=("flute",), programs=(73,), style="x", key="D major", tempo_bpm=120.0,
                        time_signature="6/8", work="w", collection="x", transpose=0, license="pd")
    assert ClipRecord.from_json(record.to_json()) == record
    with pytest.raises(CorruptInput, match="audio-data"):
        read_clips(tmp_path)
    with pytest.raises(InvalidConditioning):
        AudioCorpusConfig(clips=0)


def test_caption_forms():
    import random

    assert form_of("6/8", 120) == "jig" and form_of("4/4", 130) == "reel" and form_of("3/4", 70) == "air"
    text = caption_for(instruments=("violin",), solo=True, collection="oneills1850", key="A minor", bpm=70,
                       time_signature="3/4", rng=random.Random(0))
    assert "violin" in text and "A minor" in text and "air" in text
