#!/usr/bin/env bash
# The first command of the README: set up, then make music with the built-in models: write a tune
# (symbolic model), render it with a General MIDI SoundFont and with a learned DDSP violin, turn a
# synthesized voice into a flute (timbre transfer), and make audio straight from text with the small
# codec LM and the small latent diffusion model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
.venv/bin/cadenza generate remi-folk-small --text "a lively irish reel in D major, 16 bars" --seed 1 -o out/reel.mid
.venv/bin/cadenza render out/reel.mid -o out/reel.wav
.venv/bin/cadenza render out/reel.mid --synth ddsp:ddsp-violin -o out/reel-violin.wav
.venv/bin/python - <<'PY'
# A sung-like line to transfer: a glide through a D major arpeggio with vibrato (no microphone needed).
import numpy as np, soundfile
sr = 16000
t = np.arange(int(sr * 4.0)) / sr
notes = np.array([62, 66, 69, 74, 69, 66, 62, 62], dtype=float)
midi = np.interp(t, np.linspace(0, 4.0, len(notes)), notes) + 0.3 * np.sin(2 * np.pi * 5.5 * t)
phase = 2 * np.pi * np.cumsum(440.0 * 2 ** ((midi - 69) / 12)) / sr
voice = sum(np.sin(k * phase) / k ** 1.5 for k in range(1, 8)) * np.minimum(1, np.minimum(t, 4.0 - t) * 8) * 0.3
soundfile.write("out/voice.wav", voice.astype(np.float32), sr)
PY
.venv/bin/cadenza transfer out/voice.wav --instrument ddsp-flute -o out/voice-flute.wav
.venv/bin/cadenza generate musicgen-folk-small --text "a slow air played by a solo violin in A minor at 70 BPM" \
    --duration 8 --seed 1 -o out/air.wav
.venv/bin/cadenza generate diffusion-folk-small --text "a calm solo piano piece in C major" --duration 8 --seed 1 \
    -o out/calm.wav
echo "Listen: out/reel.wav (SoundFont), out/reel-violin.wav (learned violin), out/voice-flute.wav (voice -> flute),"
echo "        out/air.wav (codec LM) and out/calm.wav (latent diffusion): each performs the score the composer wrote"
echo "        for its text (out/air.mid, out/calm.mid)"
echo "The score is out/reel.mid; how each file was made is in its .json sidecar."
