"""The instrument probe used to score text adherence: separates timbres it was fitted on, refuses bad input."""

import numpy as np
import pytest
import soundfile

from cadenza.data.audio_corpus import ClipRecord
from cadenza.data.instrument_probe import InstrumentProbe, clip_features, solo_clip_features
from cadenza.errors import InvalidConditioning

SR = 16000


def _tone(kind: str, midi: int, rng: np.random.Generator) -> np.ndarray:
    """One second of a 'pure' (sine) or 'bright' (many harmonics) tone, with a little noise."""
    t = np.arange(SR) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    harmonics = [1] if kind == "pure" else range(1, 16)
    wav = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in harmonics if f0 * k < SR / 2)
    return (0.3 * wav / np.abs(wav).max() + 0.003 * rng.standard_normal(SR)).astype(np.float32)


@pytest.fixture
def toy_corpus(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "clips").mkdir()
    lines = []
    for i in range(24):
        kind = ("pure", "bright")[i % 2]
        split = "test" if i >= 18 else "train"
        path = f"clips/{i:06d}.flac"
        soundfile.write(tmp_path / path, _tone(kind, int(rng.integers(55, 80)), rng), SR)
        lines.append(ClipRecord(id=f"{i:06d}", path=path, caption=f"a solo {kind}", seconds=1.0, sample_rate=SR,
                                split=split, instruments=(kind,), programs=(0,), style="x", key="C major",
                                tempo_bpm=100.0, time_signature="4/4", work="w", collection="c", transpose=0,
                                license="pd", solo=True).to_json())
    (tmp_path / "clips.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_probe_separates_timbres_on_held_out_clips(toy_corpus):
    probe = InstrumentProbe.fit(toy_corpus, "train")
    assert probe.classes == ("bright", "pure")
    features, labels = solo_clip_features(toy_corpus, "test")
    assert features.shape == (6, 128)
    assert probe.accuracy(features, labels) == 1.0
    # the probe listens to the timbre, not the label order: swapping the test labels scores 0
    swapped = ["pure" if label == "bright" else "bright" for label in labels]
    assert probe.accuracy(features, swapped) == 0.0


def test_features_are_loudness_and_rate_invariant():
    rng = np.random.default_rng(1)
    wav = _tone("bright", 64, rng)
    a = clip_features(wav, SR)
    b = clip_features(wav * 0.1, SR)
    np.testing.assert_allclose(a, b, atol=1e-3)
    import librosa

    c = clip_features(librosa.resample(wav, orig_sr=SR, target_sr=32000), 32000)
    assert np.abs(a - c).mean() < 0.5


def test_bad_input_is_refused(toy_corpus):
    with pytest.raises(InvalidConditioning, match="too short"):
        clip_features(np.zeros(100, np.float32), SR)
    with pytest.raises(InvalidConditioning, match="no solo clips"):
        solo_clip_features(toy_corpus, "validation")
    probe = InstrumentProbe.fit(toy_corpus, "train")
    with pytest.raises(InvalidConditioning, match="nothing to score"):
        probe.accuracy(np.zeros((0, 128), np.float32), [])


def test_resynthesis_accuracy_scores_what_survives_a_remake(toy_corpus):
    from cadenza.data.instrument_probe import resynthesis_accuracy

    def dull(wav):  # every harmonic above the first gone: a bright tone now sounds pure
        spectrum = np.fft.rfft(wav)
        peak = int(np.argmax(np.abs(spectrum)))
        spectrum[int(peak * 1.5):] = 0
        return np.fft.irfft(spectrum, n=wav.size).astype(np.float32)

    found = resynthesis_accuracy(toy_corpus, {"same": lambda wav: wav, "dull": dull})
    assert found["real"] == found["same"] == 1.0
    assert found["dull"] == 0.5  # the pure tones stay pure, the bright ones are heard as pure
