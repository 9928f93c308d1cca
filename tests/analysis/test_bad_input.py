"""Bad input gives a clear error or an empty transcription with a message, never a crash, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cadenza import CorruptInput, InvalidConditioning
from cadenza.analysis import TranscribeOptions
from cadenza.analysis.audio_input import file_stream

from made_audio import SR, tones

MODES = [TranscribeOptions(), TranscribeOptions(mode="mono")]


@pytest.mark.parametrize("options", MODES, ids=["poly", "mono"])
def test_silence_is_empty_with_a_message(ear, options):
    result = ear.transcribe(np.zeros(3 * SR, np.float32), SR, options)
    assert len(result) == 0 and "silent" in result.message
    assert result.to_score().note_num() == 0


@pytest.mark.parametrize("options", MODES, ids=["poly", "mono"])
def test_one_sample_is_empty_with_a_message(ear, options):
    result = ear.transcribe(np.array([0.5], np.float32), SR, options)
    assert len(result) == 0 and "too short" in result.message


def test_noise_gives_no_line_in_mono(ear):
    noise = 0.3 * np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32)
    result = ear.transcribe(noise, SR, TranscribeOptions(mode="mono"))
    assert len(result) <= 2
    if len(result) == 0:
        assert "no pitched sound" in result.message


def test_noise_in_poly_is_few_quiet_notes_or_a_message(ear):
    noise = 0.3 * np.random.default_rng(1).standard_normal(4 * SR).astype(np.float32)
    result = ear.transcribe(noise, SR)
    assert len(result) < 10
    assert len(result) > 0 or "no notes" in result.message


@pytest.mark.parametrize("options", MODES, ids=["poly", "mono"])
def test_clipped_audio_keeps_its_pitches_and_says_so(ear, options):
    audio = np.clip(tones([(0.2, 0.5, 62), (0.8, 0.5, 69)], 1.6) * 20, -1, 1)
    result = ear.transcribe(audio, SR, options)
    assert {62, 69} <= set(result.notes[:, 2].astype(int))
    assert "clipped" in result.message and result.clipped_fraction > 0.01


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_samples_are_a_clear_error(ear, bad):
    audio = tones([(0.2, 0.5, 62)], 3.0)
    audio[int(2.5 * SR)] = bad
    with pytest.raises(CorruptInput, match=r"NaN or infinite samples \(the first at 2.50 s\)"):
        ear.transcribe(audio, SR)


def test_bad_arrays_and_rates_are_refused(ear):
    with pytest.raises(InvalidConditioning, match="shape"):
        ear.transcribe(np.zeros((2, 2, 2), np.float32), SR)
    with pytest.raises(InvalidConditioning, match="sample_rate"):
        ear.transcribe(np.zeros(100, np.float32), 0)
    with pytest.raises(InvalidConditioning, match="floats"):
        ear.transcribe(np.zeros(100, np.int16), SR)


def test_files_that_are_not_audio_are_a_clear_error(ear, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(CorruptInput, match="cannot read audio file"):
        ear.transcribe_file(text)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(CorruptInput, match="empty"):
        ear.transcribe_file(empty)
    with pytest.raises(CorruptInput, match="not found"):
        ear.transcribe_file(tmp_path / "missing.wav")


def test_long_files_are_read_in_blocks(tmp_path):
    """An hour would be read the same way: the reader never holds more than a block of the file."""
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", SR, 1) as f:
        for _ in range(30):  # 60 s written in 2 s pieces
            f.write(np.zeros(2 * SR, np.float32) + 0.01)
    stream = file_stream(path, 22050)
    sizes = [block.shape[0] for block in stream]
    assert sum(sizes) == 60 * SR and max(sizes) <= 2 * SR + 64
    assert stream.duration_s == pytest.approx(60.0)
