#!/usr/bin/env bash
# Never run itself (no device time in the sixth session); superseded: later sessions ran the GPU tests
# (tests/test_tempo_gpu.py among them; runs/2026-11-30-tempo-ln-native: 61 passed). Main's GPU tests before anything else next
# session: tests/test_tempo_gpu.py has not run since the fifth session's Tempo LayerNorm change
# (native_layer_norm_backward on x_hat), and tests/test_gpu.py guards the variants. ~3 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-29-tempo-speed/call_main_tests.sh   (device tool, carry .carry/whl)
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .carry/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PMEXP_NATIVE_DIR=$PWD/.native-build
: "${PMEXP_COMMIT:?set PMEXP_COMMIT}"
python3 -m pmexp.dropout.native 2>&1 | tail -1
timeout 500 python3 -m pytest -q -p no:cacheprovider tests/test_tempo_gpu.py tests/test_gpu.py > "$OUT/tests.log" 2>&1
tail -15 "$OUT/tests.log"
