"""An offline, measurable answer to "does the generated audio play the instrument the text asked for?".

A multinomial logistic regression over clip-level log-mel statistics (per-band mean and standard
deviation over time), fitted on the solo clips of the rendered audio corpus (`cadenza train audio-data`),
one class per General MIDI solo instrument. Its accuracy on the corpus' held-out real clips is the
reference; its accuracy on generated clips (prompted "... for solo <instrument> ...") measures text
adherence of the audio families. No network, no pretrained audio model: the probe is fitted in seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from cadenza.errors import InvalidConditioning

PROBE_SAMPLE_RATE = 16000
N_MELS = 64
TOP_DB = 60.0


def clip_features(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """``wav: [T]`` float mono -> ``[2 * N_MELS]``: mean and std over time of the mel spectrum in dB
    (1024-point FFT, hop 256) relative to the clip's loudest bin and floored ``TOP_DB`` below it, after
    resampling to 16 kHz. The floor makes the probe listen like a person: content 60 dB down (a codec's
    faint noise floor, a renderer's digital silence) reads the same."""
    import librosa

    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if wav.size < 2048:
        raise InvalidConditioning(f"instrument probe: clip too short ({wav.size} samples)")
    if sample_rate != PROBE_SAMPLE_RATE:
        wav = librosa.resample(wav, orig_sr=sample_rate, target_sr=PROBE_SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(y=wav, sr=PROBE_SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=N_MELS)
    log_mel = librosa.power_to_db(mel, ref=max(float(mel.max()), 1e-12), top_db=TOP_DB)
    return np.concatenate([log_mel.mean(axis=1), log_mel.std(axis=1)]).astype(np.float32)


@dataclass
class InstrumentProbe:
    """Fitted probe: ``classes`` (instrument names) and the sklearn pipeline (scaler + logistic regression)."""

    classes: tuple[str, ...]
    pipeline: object

    @classmethod
    def fit(cls, corpus_dir: str | os.PathLike, split: str = "train", max_clips: int | None = None,
            seed: int = 0) -> InstrumentProbe:
        """Fit on the solo clips of ``split`` in the audio corpus at ``corpus_dir``."""
        features, labels = solo_clip_features(corpus_dir, split, max_clips)
        return cls.fit_features(features, labels, seed=seed)

    @classmethod
    def fit_features(cls, features: np.ndarray, labels: list[str], seed: int = 0) -> InstrumentProbe:
        """Fit on ``features [N, 2 * N_MELS]`` (from `clip_features`) labelled with instrument names."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        classes = tuple(sorted(set(labels)))
        if len(classes) < 2:
            raise InvalidConditioning("instrument probe: needs clips of at least two instruments")
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, random_state=seed))
        pipeline.fit(features, [classes.index(label) for label in labels])
        return cls(classes=classes, pipeline=pipeline)

    def predict(self, features: np.ndarray) -> list[str]:
        """``features: [N, 2 * N_MELS]`` (from `clip_features`) -> instrument names."""
        return [self.classes[int(i)] for i in self.pipeline.predict(np.asarray(features))]

    def accuracy(self, features: np.ndarray, labels: list[str]) -> float:
        """Fraction of ``labels`` predicted exactly."""
        if len(labels) == 0:
            raise InvalidConditioning("instrument probe: nothing to score")
        predicted = self.predict(features)
        return float(np.mean([p == t for p, t in zip(predicted, labels)]))


def solo_clip_features(corpus_dir: str | os.PathLike, split: str,
                       max_clips: int | None = None) -> tuple[np.ndarray, list[str]]:
    """``(features [N, 2 * N_MELS], instrument names)`` of the solo clips of ``split``."""
    from cadenza.data.audio_corpus import load_clip, read_clips

    records = [r for r in read_clips(corpus_dir, split) if r.solo][:max_clips]
    if not records:
        raise InvalidConditioning(f"{corpus_dir}: no solo clips in the {split} split")
    features = np.stack([clip_features(load_clip(corpus_dir, r)[0], r.sample_rate) for r in records])
    return features, [r.instruments[0] for r in records]


def resynthesis_accuracy(corpus_dir: str | os.PathLike, resynthesise: dict, max_train: int = 1500,
                         max_test: int | None = None) -> dict[str, float]:
    """How much of the instrument survives each way of re-making audio: the probe, fitted on ``max_train``
    real solo training clips, on the solo test clips, real (``"real"``) and after each
    ``resynthesise[name]``: ``wav [T] -> wav [T']`` (e.g. a codec's encode/decode). Fractions named."""
    from cadenza.data.audio_corpus import load_clip, read_clips

    probe = InstrumentProbe.fit(corpus_dir, "train", max_clips=max_train)
    records = [r for r in read_clips(corpus_dir, "test") if r.solo][:max_test]
    if not records:
        raise InvalidConditioning(f"{corpus_dir}: no solo clips in the test split")
    labels = [r.instruments[0] for r in records]
    wavs = [(load_clip(corpus_dir, r)[0], r.sample_rate) for r in records]
    made = {"real": probe.accuracy(np.stack([clip_features(w, rate) for w, rate in wavs]), labels)}
    for name, remake in resynthesise.items():
        made[name] = probe.accuracy(np.stack([clip_features(remake(w), rate) for w, rate in wavs]), labels)
    return {name: round(value, 4) for name, value in made.items()}
