"""Transcription on audio made in code: pitches, onsets, the hummed round trip, chunking, options."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cadenza import InvalidConditioning, UnsupportedConditioning
from cadenza.analysis import TranscribeOptions, note_f1, score_notes
from cadenza.analysis.chunks import ChunkedDecoder
from cadenza.analysis.monophonic import MonoFrames

from made_audio import SR, hum, tones

MELODY = [(0.2, 0.4, 60), (0.7, 0.4, 62), (1.2, 0.4, 64), (1.7, 0.4, 65), (2.2, 0.6, 67)]


def test_poly_hears_a_line_and_a_chord(ear):
    chord = [(3.0, 0.8, 60), (3.0, 0.8, 64), (3.0, 0.8, 67)]
    result = ear.transcribe(tones(MELODY + chord, 4.2), SR)
    strong = result.notes[result.notes[:, 3] >= 64]
    line = strong[strong[:, 0] < 2.9]
    assert line[:, 2].astype(int).tolist() == [60, 62, 64, 65, 67]
    assert np.all(np.abs(line[:, 0] - [m[0] for m in MELODY]) < 0.05)
    assert sorted(strong[strong[:, 0] > 2.9][:, 2].astype(int).tolist()) == [60, 64, 67]
    assert result.mode == "poly" and result.message is None


@pytest.mark.parametrize("pitches", [[62, 64, 66, 67, 69, 67, 66, 64, 62, 62], [55, 59, 62, 67, 62, 59, 55]])
def test_a_hummed_line_round_trips_to_its_pitches(ear, pitches):
    """A sung-like tone that glides between notes, with vibrato and breath noise: the notes heard are
    the notes hummed, and quantised they sit on a grid of the hummed tempo (120 BPM, a note a beat)."""
    result = ear.transcribe(hum(pitches), 16000, TranscribeOptions(mode="mono", quantize=True))
    assert result.notes[:, 2].astype(int).tolist() == pitches
    assert abs(result.tempo_bpm - 120) < 3
    score = result.to_score()
    notes = score.tracks[0].notes
    assert [n.pitch for n in notes] == pitches
    assert [n.time for n in notes] == [480 * i for i in range(len(pitches))]
    assert score.tempos[0].qpm == pytest.approx(result.tempo_bpm)
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (4, 4)


def test_unquantized_score_keeps_the_times(ear):
    result = ear.transcribe(tones(MELODY, 3.0), SR)
    back = score_notes(result.to_score())
    assert np.allclose(back[:, 0], result.notes[:, 0], atol=0.005)
    assert note_f1(score_notes(result.to_score()), result.notes)["f1"] == 1.0


def test_options_pitch_range_and_min_note_length(ear):
    audio = tones(MELODY + [(2.9, 0.06, 72)], 3.3)
    high_only = ear.transcribe(audio, SR, TranscribeOptions(pitch_range=(63, 108)))
    assert set(high_only.notes[:, 2].astype(int)) <= set(range(63, 109))
    assert {64, 65, 67} <= set(high_only.notes[:, 2].astype(int))
    long_only = ear.transcribe(audio, SR, TranscribeOptions(min_note_ms=300))
    assert np.all(long_only.notes[:, 1] - long_only.notes[:, 0] >= 0.3 - 0.02)


def test_pitch_bends_are_written_for_a_sliding_note(ear):
    sr = SR
    t = np.arange(int(1.5 * sr)) / sr
    pitch = 64 + np.clip((t - 0.5) * 2, 0, 1)  # holds E4, slides up a semitone, holds
    phase = 2 * np.pi * np.cumsum(440 * 2 ** ((pitch - 69) / 12)) / sr
    audio = (0.3 * sum(np.sin(k * phase) / k for k in range(1, 6)) * np.minimum(1, t / 0.01)).astype(np.float32)
    result = ear.transcribe(audio, sr, TranscribeOptions(pitch_bends=True))
    assert len(result.bends) == len(result)
    assert any(np.abs(b).max() >= 2 for b in result.bends)  # at least 2/3 of a semitone heard as bend
    assert len(result.to_score().tracks[0].pitch_bends) > 0


def test_chunked_decoding_matches_whole_decoding(ear):
    """A 16 s line decoded 4 s at a time gives the notes decoded whole, holding a bounded number of frames."""
    notes = [(0.1 + 0.5 * i, 0.35, 60 + (i * 5) % 12) for i in range(31)]
    audio = tones(notes, 16.0)
    whole = ear.transcribe(audio, SR, TranscribeOptions(chunk_s=60))
    chunked = ear.transcribe(audio, SR, TranscribeOptions(chunk_s=4))
    assert chunked.notes[:, 2].tolist() == whole.notes[:, 2].tolist()
    assert np.allclose(chunked.notes[:, :2], whole.notes[:, :2], atol=0.02)
    mono_whole = ear.transcribe(audio, SR, TranscribeOptions(mode="mono", chunk_s=60))
    mono_chunked = ear.transcribe(audio, SR, TranscribeOptions(mode="mono", chunk_s=4))
    assert mono_chunked.notes[:, 2].tolist() == mono_whole.notes[:, 2].tolist()


def test_chunked_decoder_holds_at_most_two_margins_a_chunk_and_a_part():
    seen = []

    def decode(frames, claimed):
        seen.append(len(frames))
        return []

    decoder = ChunkedDecoder(decode, MonoFrames.concat, chunk_frames=100, margin_frames=25, frame_s=0.01)
    for i in range(200):  # 2000 frames, 10 at a time
        times = np.arange(i * 10, i * 10 + 10) * 0.01
        zeros = np.zeros(10, np.float32)
        decoder.push(MonoFrames(zeros, zeros, zeros, zeros, times))
    decoder.finish()
    assert decoder.max_held <= 25 + 100 + 25 + 10
    assert len(seen) >= 18


def test_transcribe_file_reads_flac_and_ogg(ear, tmp_path):
    audio = tones(MELODY, 3.0)
    for suffix in (".flac", ".ogg"):
        path = tmp_path / f"line{suffix}"
        sf.write(path, np.stack([audio, audio], axis=1), SR)  # stereo: channels are mixed
        result = ear.transcribe_file(path)
        strong = result.notes[result.notes[:, 3] >= 64]
        assert strong[:, 2].astype(int).tolist() == [60, 62, 64, 65, 67]
        assert result.duration_s == pytest.approx(3.0, abs=0.01)


def test_options_are_checked():
    with pytest.raises(InvalidConditioning, match="mode"):
        TranscribeOptions(mode="stereo")
    with pytest.raises(InvalidConditioning, match="onset_threshold"):
        TranscribeOptions(onset_threshold=1.5)
    with pytest.raises(InvalidConditioning, match="pitch_range"):
        TranscribeOptions(pitch_range=(80, 40))
    with pytest.raises(InvalidConditioning, match="grid"):
        TranscribeOptions(grid="1/5")
    with pytest.raises(UnsupportedConditioning, match="no option"):
        TranscribeOptions.from_dict({"treshold": 0.3})
    assert TranscribeOptions.from_dict(TranscribeOptions(pitch_range=(40, 80)).to_dict()).pitch_range == (40, 80)


def test_note_f1_counts_onsets_within_50_ms():
    ref = np.array([[0.0, 0.5, 60, 90], [0.5, 1.0, 62, 90]])
    assert note_f1(ref, ref)["f1"] == 1.0
    late = ref + [[0.04, 0.04, 0, 0], [0.2, 0.2, 0, 0]]
    assert note_f1(ref, late)["f1"] == pytest.approx(0.5)
    assert note_f1(ref, ref + [[0, 0.3, 0, 0], [0, 0, 0, 0]], offsets=True)["f1"] == pytest.approx(0.5)
    assert note_f1(ref, np.zeros((0, 4)))["f1"] == 0.0
