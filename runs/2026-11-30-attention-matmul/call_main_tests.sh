#!/usr/bin/env bash
# main after merging tempo-attention-casts and attention-dropout-matmul: every GPU test file that
# touches the merged code (dropout kernels, the attention kernel path and its CUDA-graph test, the
# native extension, Tempo). ~4 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-attention-matmul/call_main_tests.sh   (device tool, carry .carry/whl)
PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh  # the carried wheels, PYTHONPATH, the native build dir; needs PMEXP_COMMIT
python3 -m pmexp.dropout.native 2>&1 | tail -1
timeout 330 python3 -m pytest -q -p no:cacheprovider tests/test_attention_matmul.py tests/test_native_gpu.py \
  tests/test_gpu.py tests/test_tempo_gpu.py > "$OUT/tests.log" 2>&1
tail -6 "$OUT/tests.log"
