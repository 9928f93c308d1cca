#!/usr/bin/env bash
# Run ON the lent GPU machine, from the repository root, with .whl/ carried (see scripts/gpu_wheels.sh):
# the CUDA tests, then both decode benchmarks on CUDA (bf16, our step compiled into CUDA graphs). Logs and
# the benchmarks' JSON lines go to $OUT (the device tool brings that folder back), else out/gpu/.
set -uo pipefail
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi -L | tee "$OUT/device.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/device.txt"
status=0
python3 -m pytest -q -m cuda -p no:cacheprovider tests/generators/codec_lm/test_lm_cuda.py \
  tests/generators/symbolic/test_symbolic_cuda.py tests/engine/test_decode.py tests/engine/test_device.py 2>&1 | tee "$OUT/cuda_tests.log" || status=1
for name in decode_codec decode_symbolic; do
  python3 -m benchmarks "$name" --device cuda "$@" 2>&1 | tee "$OUT/$name.log" || status=1
  tail -n 1 "$OUT/$name.log" > "$OUT/$name.json"
done
exit $status
