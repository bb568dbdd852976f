#!/usr/bin/env bash
# Ran (commit c86e7a9; record: runs/2026-11-30-tempo-casts). For branch tempo-attention-casts:
# Tempo's GPU tests first (the branch's attention casts and LayerNorm kernel have run only through
# Triton's CPU interpreter), then the same bench and profile as call.sh. ~5 min on nvidia-h200.
#   git checkout tempo-attention-casts && PMEXP_COMMIT=<sha> bash runs/2026-11-29-tempo-speed/call_next.sh
#   (device tool, carry .carry/whl); merge into main only when tests.log says passed.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .carry/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PMEXP_NATIVE_DIR=$PWD/.native-build
: "${PMEXP_COMMIT:?set PMEXP_COMMIT}"
python3 -m pmexp.dropout.native 2>&1 | tail -1
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_tempo_gpu.py > "$OUT/tests.log" 2>&1; tail -4 "$OUT/tests.log"
grep -q " passed" "$OUT/tests.log" && ! grep -q -E "failed|error" "$OUT/tests.log" || { echo "tests did not pass: no bench"; exit 1; }
timeout 200 python3 -m pmexp.bench step --parts step --cells bert_large_512 tinybert_512 --modes eager \
  --variants standard packed tempo:standard tempo:packed --reps 7 --steps 8 --out "$OUT/steps" > "$OUT/steps.log" 2>&1
cat "$OUT/steps/step.md" 2>/dev/null || tail -20 "$OUT/steps.log"
timeout 120 python3 runs/2026-11-29-tempo-speed/tempo_profile.py > "$OUT/profile.txt" 2>&1; head -3 "$OUT/profile.txt"
