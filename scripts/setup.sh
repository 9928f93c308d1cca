#!/usr/bin/env bash
# Set up Cadenza in ./.venv: system packages (FluidSynth + a General MIDI SoundFont) where we may install
# them, then the CPU build of PyTorch and the package. Safe to run again: it skips what is already there.
# Usage: bash scripts/setup.sh [extras]      default: all (every generator family and the web app);
#        bash scripts/setup.sh dev             all + test tools (pytest, Playwright with Debian's Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-all}"
PYTHON="${PYTHON:-python3}"

APT_PACKAGES="fluidsynth fluid-soundfont-gm"
NEED_APT=0
{ command -v fluidsynth >/dev/null 2>&1 && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; } || NEED_APT=1
# a C++ compiler and ninja build the symbolic model's C++ CPU step (optional: without them Python runs it)
if ! { command -v g++ >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1; }; then
  APT_PACKAGES="$APT_PACKAGES g++ ninja-build"
  NEED_APT=1
fi
if [ "$EXTRAS" = dev ]; then  # the browser test drives Debian's Chromium (Playwright never downloads one)
  APT_PACKAGES="$APT_PACKAGES chromium"
  command -v chromium >/dev/null 2>&1 || NEED_APT=1
fi
if [ "$NEED_APT" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing $APT_PACKAGES (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PACKAGES >/dev/null
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $APT_PACKAGES >/dev/null
  else
    echo "[setup] please install: sudo apt-get install $APT_PACKAGES" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
# torch first and pinned for the setup only: a bare `torch` would pull a multi-GB CUDA build; 2.13.0 is
# the CPU wheel this project is tested with (the package itself accepts torch>=2.4).
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch (CPU)"
  .venv/bin/pip install -q torch==2.13.0
fi
SPEC="."
[ "$EXTRAS" != none ] && SPEC=".[$EXTRAS]"
echo "[setup] installing cadenza $SPEC"
.venv/bin/pip install -q -e "$SPEC" 2>&1 | grep -v -E "^(WARNING: Location|$)" || true
if [ "$EXTRAS" != none ]; then
  echo "[setup] installing requirements-nodeps.txt (--no-deps)"
  .venv/bin/pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | grep -v -E "^(WARNING: Location|$)" || true
fi
# The language models' one-step CPU kernels in C++ (the symbolic LM's batch-1 decoding about 1.4x faster, the
# codec LM's about 2x): each built once, ~30 s. Optional: if one cannot be built, a note says why and the
# Python step is used.
for family in symbolic codec_lm; do
  if ! .venv/bin/python -c "from cadenza.generators.$family import step_kernel as k; raise SystemExit(0 if k.KERNEL.load() else 1)" 2>/dev/null; then
    echo "[setup] building the C++ $family step (about 30 s, once)"
    .venv/bin/python -m "cadenza.generators.$family.step_kernel" || true
  fi
done
.venv/bin/python -c "import cadenza" && echo "[setup] ready: .venv/bin/cadenza --help"
