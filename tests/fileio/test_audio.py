"""Audio files in and out ([C, N] float32), atomic writes, loudness normalisation."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from cadenza.errors import CadenzaError, CorruptInput, InvalidConditioning
from cadenza.fileio.audio import integrated_loudness, loudness_normalize, read_audio, write_audio

SR = 22050


def sine(freq: float = 440.0, seconds: float = 1.0, channels: int = 2, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.tile(amp * np.sin(2 * np.pi * freq * t), (channels, 1)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "subtype", "tolerance"),
    [("a.wav", None, 1e-4), ("a.wav", "FLOAT", 0.0), ("a.flac", None, 1e-4), ("a.flac", "PCM_24", 1e-6),
     ("a.ogg", None, 0.05)],
)
def test_round_trip(tmp_path, name, subtype, tolerance):
    audio = sine(channels=2)
    write_audio(tmp_path / name, audio, SR, subtype=subtype)
    back, sr = read_audio(tmp_path / name)
    assert sr == SR and back.dtype == np.float32 and back.shape == audio.shape
    assert np.abs(back - audio).max() <= tolerance + 1e-7


def test_read_mono_and_resample(tmp_path):
    write_audio(tmp_path / "a.wav", sine(1000.0, channels=2), SR)
    mono, sr = read_audio(tmp_path / "a.wav", sample_rate=16000, mono=True)
    assert sr == 16000 and mono.shape == (1, 16000)
    spectrum = np.abs(np.fft.rfft(mono[0] * np.hanning(mono.shape[1])))
    assert np.fft.rfftfreq(mono.shape[1], 1 / sr)[spectrum.argmax()] == pytest.approx(1000.0, abs=2.0)


def test_overshoot_is_clipped_not_wrapped(tmp_path):
    audio = sine(amp=1.5, channels=1)
    write_audio(tmp_path / "loud.wav", audio, SR)
    back, _ = read_audio(tmp_path / "loud.wav")
    # Wrapped int16 would flip the sign of the peaks; clipped ones sit at full scale.
    assert back.max() == pytest.approx(1.0, abs=1e-3) and back[0, audio[0].argmax()] > 0.99


@pytest.mark.parametrize("name", ["a.mp3", "a.aiff", "a", "a.WAV.txt"])
def test_unknown_suffix_is_refused(tmp_path, name):
    with pytest.raises(InvalidConditioning, match="suffix"):
        write_audio(tmp_path / name, sine(), SR)
    assert not any(tmp_path.iterdir())


def test_bad_subtype_and_shape_are_refused(tmp_path):
    with pytest.raises(InvalidConditioning, match="FLOAT"):
        write_audio(tmp_path / "a.flac", sine(), SR, subtype="FLOAT")
    with pytest.raises(InvalidConditioning, match=r"\[samples, channels\]"):
        write_audio(tmp_path / "a.wav", sine().T.copy(), SR)
    with pytest.raises(InvalidConditioning, match="2-D"):
        write_audio(tmp_path / "a.wav", sine()[0], SR)


def test_failed_write_leaves_target_untouched_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.wav"
    write_audio(target, sine(channels=1), SR)
    before = target.read_bytes()

    def half_write(file, data, samplerate, subtype=None, format=None):
        file.write(b"RIFF\x00\x00")  # a partial header, then the write "fails"
        file.flush()
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_audio(target, sine(channels=2), SR)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


def test_missing_audio_file(tmp_path):
    with pytest.raises(CadenzaError, match="not found") as info:
        read_audio(tmp_path / "missing.wav")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CorruptInput)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"this is not audio at all" * 10, "cannot read"),
     (b"RIFF\x10\x00\x00\x00WAVEjunk", "cannot read")],
    ids=["empty", "text", "truncated-wav"],
)
def test_corrupt_audio_files(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(CorruptInput, match=message):
        read_audio(path)


def test_wav_without_samples_is_corrupt(tmp_path):
    sf.write(tmp_path / "none.wav", np.zeros((0, 2), dtype=np.float32), SR)
    with pytest.raises(CorruptInput, match="no samples"):
        read_audio(tmp_path / "none.wav")


def measure(audio: np.ndarray, sr: int = SR) -> float:
    return pyloudnorm.Meter(sr).integrated_loudness(audio.T.astype(np.float64))


def _signals():
    rng = np.random.default_rng(7)
    yield "stereo noise", (rng.standard_normal((2, 3 * SR)) * 0.1).astype(np.float32), SR
    yield "mono sine 48k", sine(997.0, seconds=2.0, channels=1, sr=48000), 48000
    yield "50 Hz sine", sine(50.0, seconds=2.0, channels=1), SR
    loud, hush, mid = (rng.standard_normal((2, k)) * a for k, a in ((SR, 0.3), (2 * SR, 0.001), (15000, 0.05)))
    yield "gated parts", np.concatenate([loud, hush, mid], axis=1).astype(np.float32), SR
    yield "5 channels", (rng.standard_normal((5, SR)) * 0.1).astype(np.float32), 44100
    yield "one block", (rng.standard_normal((2, int(0.4 * SR))) * 0.1).astype(np.float32), SR


@pytest.mark.parametrize(("audio", "sr"), [s[1:] for s in _signals()], ids=[s[0] for s in _signals()])
def test_loudness_matches_pyloudnorm(audio, sr):
    assert integrated_loudness(audio, sr) == pytest.approx(measure(audio, sr), abs=1e-6)


def test_loudness_of_silence_and_of_too_short_audio():
    assert integrated_loudness(np.zeros((2, SR), dtype=np.float32), SR) == float("-inf")
    with pytest.raises(InvalidConditioning, match="0.4 s"):
        integrated_loudness(sine(seconds=0.3), SR)


@pytest.mark.parametrize("amp", [0.01, 0.3])
def test_normalize_reaches_target(amp):
    noise = (np.random.default_rng(0).standard_normal((2, 2 * SR)) * amp).astype(np.float32)
    out = loudness_normalize(noise, SR, -20.0)
    assert out.dtype == np.float32 and out.shape == noise.shape
    assert measure(out) == pytest.approx(-20.0, abs=0.05)


def test_normalize_never_clips_and_still_reaches_the_target():
    # A quiet signal with clicks: one gain for -14 LUFS would push them far past 0 dBFS; the limiter takes them.
    audio = sine(amp=0.1, channels=2)
    audio[:, 1000::4000] = 0.9
    out = loudness_normalize(audio, SR, -14.0)
    assert np.abs(out).max() <= 10 ** (-1 / 20) + 1e-6
    assert measure(out) == pytest.approx(-14.0, abs=0.1)
    untouched = np.ones(audio.shape[1], dtype=bool)
    untouched[np.arange(1000, audio.shape[1], 4000)[:, None] + np.arange(-600, 601)] = False
    untouched &= np.abs(audio[0]) > 1e-3  # (a ratio needs a sample that is not 0)
    gain = out[0, untouched] / audio[0, untouched]
    assert np.allclose(gain, np.median(gain), rtol=1e-4)  # away from the clicks the music is only scaled, not bent


def test_a_lone_click_in_near_silence_is_not_squashed():
    audio = sine(amp=0.001, channels=2)
    audio[:, 1000] = 0.9
    out = loudness_normalize(audio, SR, -14.0)
    assert np.abs(out).max() <= 10 ** (-1 / 20) + 1e-6
    assert measure(out) < -14.0  # it would take more than MAX_LIMIT_DB of limiting: it stays quieter


def test_limiter_holds_the_ceiling_exactly():
    from cadenza.fileio.audio import limit_peaks

    loud = (np.random.default_rng(1).standard_normal((2, SR)) * 0.8).astype(np.float32)
    out = limit_peaks(loud, SR, 0.5)
    assert np.abs(out).max() <= 0.5 + 1e-7 and np.abs(out).max() > 0.45


def test_normalize_leaves_silence_and_guards_short_clips():
    silence = np.zeros((2, SR), dtype=np.float32)
    assert np.array_equal(loudness_normalize(silence, SR), silence)
    short = sine(seconds=0.1, amp=1.0, channels=1)  # too short to measure: peak guard only
    out = loudness_normalize(short, SR)
    assert np.abs(out).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)


def test_m4a_is_read_with_pyav(tmp_path):
    """AAC in an MP4 container (what phones record) reads like any other audio file; a broken one is CorruptInput."""
    av = pytest.importorskip("av")
    from cadenza.conditioning import Conditioning
    from cadenza.errors import CorruptInput
    from cadenza.fileio.audio import audio_frames, read_audio

    sr = 22050
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
    path = tmp_path / "take.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
        frame.rate = sr
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    samples, rate = read_audio(path)
    assert rate == sr and samples.shape[0] == 1 and sr <= samples.shape[1] < sr + 4096  # the encoder's priming
    assert audio_frames(path) == samples.shape[1]
    spectrum = np.abs(np.fft.rfft(samples[0, 4096:4096 + 8192]))
    assert abs(np.argmax(spectrum) * sr / 8192 - 440) < 5  # still the tone
    assert Conditioning(source_audio=str(path)).source_audio == str(path)
    broken = tmp_path / "broken.m4a"
    broken.write_bytes(b"not an mp4 at all" * 10)
    with pytest.raises(CorruptInput):
        read_audio(broken)
    with pytest.raises(CorruptInput, match="source_audio"):
        Conditioning(source_audio=str(broken))


def test_the_record_says_what_loudness_was_reached_on_a_file_with_large_peaks():
    """Clicks 19 dB over the music: the limiter takes them, the result is on target and says so."""
    from cadenza.fileio.audio import normalize_loudness

    audio = sine(amp=0.1, channels=2)
    audio[:, 1000::4000] = 0.95
    out, record = normalize_loudness(audio, SR, -14.0)
    assert record.why_not is None
    assert record.measured_lufs == pytest.approx(measure(out), abs=0.01)
    assert abs(record.measured_lufs - record.target_lufs) <= 0.5
    assert record.limited_db > 3.0  # the peaks were turned down, and by how much is recorded
    assert record.to_dict().keys() == {"target_lufs", "measured_lufs", "limited_db"}


def test_the_record_says_why_a_target_was_missed():
    from cadenza.fileio.audio import MAX_LIMIT_DB, normalize_loudness

    audio = sine(amp=0.001, channels=2)
    audio[:, 1000] = 0.9  # a lone click: reaching -14 would take far more than MAX_LIMIT_DB
    out, record = normalize_loudness(audio, SR, -14.0)
    assert record.measured_lufs == pytest.approx(measure(out), abs=0.01) and record.measured_lufs < -14.5
    assert record.limited_db == pytest.approx(MAX_LIMIT_DB, abs=0.1)
    assert "limiting" in record.why_not
    _, short = normalize_loudness(sine(seconds=0.1, channels=1), SR, -14.0)
    assert short.measured_lufs is None and "cannot be measured" in short.why_not
    _, silent = normalize_loudness(np.zeros((1, SR), dtype=np.float32), SR, -14.0)
    assert silent.measured_lufs is None and "silent" in silent.why_not
