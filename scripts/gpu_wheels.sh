#!/usr/bin/env bash
# Run HERE (a machine with pip and a network) before measuring on a lent GPU machine, which has Python
# 3.12 with torch, transformers and safetensors but cannot download anything. Fetches into .whl/ the few
# packages the CUDA tests and the decode benchmarks import that its image lacks (about 4 MB). Audiocraft is
# left out on purpose (it drags in spacy, av and more): decode_codec then times our side alone, against the
# memory-bandwidth limit, and says so in its JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
PY=${PYTHON:-.venv/bin/python}
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl symusic==0.6.0 pySmartDL==1.3.4 platformdirs==4.14.7 miditok==3.1.0 omegaconf==2.4.0
ls -l .whl
