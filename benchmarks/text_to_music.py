"""Text-to-music adherence and speed of the shipped audio models (codec LM and latent diffusion).

Does the audio play the instrument the text asked for? An instrument probe (`cadenza.data.instrument_probe`:
logistic regression on log-mel statistics) is fitted on the solo clips of the rendered audio corpus
(`data/audio`, from `cadenza train audio-data`). References in the same run:

- ``probe_accuracy_real``: the probe on the corpus' held-out real test clips (its ceiling);
- ``probe_accuracy_codec``: the same clips after the codec's encode/decode (quantized path): what the
  codec's fidelity leaves of the timbre; ``chance`` = 1 / number of instruments.

A second probe, fitted on codec-resynthesised training clips (``codec_probe_accuracy_codec`` on the
resynthesised test clips), judges generated audio within the codec's own sound, so its
``codec_probe_instrument_accuracy_<family>`` separates "the model played the wrong instrument" from
"the codec blurs timbre".

Then each shipped default writes one clip per solo instrument, prompted in the corpus' caption style
with a key and tempo ("an Irish jig played by a solo oboe in G major at 120 BPM"), fixed seeds:
``instrument_accuracy_<family>`` is the fraction the probe labels as the prompted instrument, and
``x_realtime_<family>`` the seconds of audio written per second of wall time (2 threads).
``--quick``: 6 instruments, 4 s clips, 300 probe training clips.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import paths

DATA = paths.DATA / "audio"
MODELS = {"codec_lm": "musicgen-folk-small", "diffusion": "diffusion-folk-small"}
KEYS = ("G major", "D minor", "A major", "E minor", "C major", "F major")
FORMS = ("an Irish jig", "a Scottish reel", "a folk song", "an Irish hornpipe")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prompt_for(instrument: str, index: int) -> str:
    """The caption-style prompt for ``instrument`` (varied key, tempo and form by ``index``)."""
    bpm = 90 + 15 * (index % 5)
    return f"{FORMS[index % len(FORMS)]} played by a solo {instrument} in {KEYS[index % len(KEYS)]} at {bpm} BPM"


def codec_resynthesis_features(spec, wavs: list[np.ndarray], sample_rate: int) -> np.ndarray:
    """Probe features of ``wavs`` after the quantized encode/decode of the codec in the codec LM checkpoint
    ``spec`` (format "cadenza")."""
    import torch

    from cadenza.data.instrument_probe import clip_features
    from cadenza.codec.model import load_codec

    codec = load_codec(spec.directory / spec.files["codec"]["path"], spec.config["codec"])
    out = []
    with torch.inference_mode():
        for wav in wavs:
            x = torch.from_numpy(wav.astype(np.float32))[None, None]
            codes, scale = codec.encode(x)
            out.append(clip_features(codec.decode(codes, scale)[0, 0].numpy(), sample_rate))
    return np.stack(out)


def main(quick: bool) -> dict:
    import torch

    from cadenza import Conditioning, Sampling, Studio
    from cadenza.checkpoints import REPO_CHECKPOINTS
    from cadenza.data.audio_corpus import load_clip, read_clips
    from cadenza.data.instrument_probe import InstrumentProbe, clip_features

    if not (DATA / "clips.jsonl").is_file():
        raise SystemExit(f"{DATA} is missing: run `cadenza train audio-data` first")
    torch.set_num_threads(2)
    started = time.time()
    probe = InstrumentProbe.fit(DATA, "train", max_clips=300 if quick else 1500)
    log(f"probe fitted on train clips in {time.time() - started:.0f} s: {len(probe.classes)} instruments")
    test = [r for r in read_clips(DATA, "test") if r.solo][: 24 if quick else None]
    test_wavs = [load_clip(DATA, r)[0] for r in test]
    test_labels = [r.instruments[0] for r in test]
    real_features = np.stack([clip_features(w, r.sample_rate) for w, r in zip(test_wavs, test)])
    figures: dict = {"chance": round(1 / len(probe.classes), 4), "instruments": len(probe.classes),
                     "probe_accuracy_real": round(probe.accuracy(real_features, test_labels), 4),
                     "test_clips": len(test)}
    studio = Studio(model_dirs=[REPO_CHECKPOINTS])
    codec_model = MODELS["codec_lm"]
    probes = {"": probe}
    if codec_model in studio.specs():
        spec = studio.spec(codec_model)
        features = codec_resynthesis_features(spec, test_wavs, test[0].sample_rate)
        figures["probe_accuracy_codec"] = round(probe.accuracy(features, test_labels), 4)
        train = [r for r in read_clips(DATA, "train") if r.solo][: 300 if quick else 1500]
        train_features = codec_resynthesis_features(spec, [load_clip(DATA, r)[0] for r in train], train[0].sample_rate)
        probes["codec_probe_"] = InstrumentProbe.fit_features(train_features, [r.instruments[0] for r in train])
        figures["codec_probe_accuracy_codec"] = round(probes["codec_probe_"].accuracy(features, test_labels), 4)
    log(f"references: {figures}")

    instruments = probe.classes[:: max(1, len(probe.classes) // 6)][:6] if quick else probe.classes
    seconds = 4.0 if quick else 8.0
    for family, name in MODELS.items():
        if name not in studio.specs():
            log(f"{name} is not in checkpoints/: {family} skipped")
            continue
        studio.generate(name, Conditioning(text="warm-up", duration_s=1.0), Sampling(seed=0))  # load + first call
        hits = {prefix: [] for prefix in probes}
        wall, written = 0.0, 0.0
        for index, instrument in enumerate(instruments):
            text = prompt_for(instrument, index)
            tick = time.perf_counter()
            out = studio.generate(name, Conditioning(text=text, duration_s=seconds), Sampling(seed=index))[0]
            wall += time.perf_counter() - tick
            written += out.samples.shape[-1] / out.sample_rate
            features = clip_features(out.samples.mean(axis=0), out.sample_rate)[None]
            said = {prefix: p.predict(features)[0] for prefix, p in probes.items()}
            for prefix, predicted in said.items():
                hits[prefix].append(predicted == instrument)
            log(f"{family}: {text!r} -> probes say {said}")
        for prefix, marks in hits.items():
            figures[f"{prefix}instrument_accuracy_{family}"] = round(float(np.mean(marks)), 4)
        figures[f"x_realtime_{family}"] = round(written / wall, 2)
        figures[f"prompts_{family}"] = len(instruments)
    figures.update({"seconds_per_clip": seconds, "threads": 2, "torch": torch.__version__})
    return figures
