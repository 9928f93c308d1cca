#!/usr/bin/env bash
# The first command of the README: set up, then write a tune with the built-in model and render it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
.venv/bin/cadenza generate remi-folk-small --text "a lively irish reel in D major, 16 bars" --seed 1 -o out/reel.mid
.venv/bin/cadenza render out/reel.mid -o out/reel.wav
echo "Listen: out/reel.wav   (the score is out/reel.mid; how it was made: out/reel.mid.json)"
