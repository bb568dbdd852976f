#!/usr/bin/env bash
# H200 call (issue 12, item 5: Tempo at speed): Tempo's steps against memory=none, interleaved, and
# the profile that says where the rest goes.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-29-tempo-speed/call.sh     (device tool, carry .carry/whl)
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .carry/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PMEXP_NATIVE_DIR=$PWD/.native-build
: "${PMEXP_COMMIT:?set PMEXP_COMMIT}"
python3 -m pmexp.dropout.native 2>&1 | tail -2
timeout 200 python3 -m pmexp.bench step --parts step --cells bert_large_512 tinybert_512 --modes eager \
  --variants standard packed tempo:standard tempo:packed --reps 7 --steps 8 --out "$OUT/steps" > "$OUT/steps.log" 2>&1
cat "$OUT/steps/step.md" 2>/dev/null || tail -20 "$OUT/steps.log"
timeout 120 python3 runs/2026-11-29-tempo-speed/tempo_profile.py > "$OUT/profile.txt" 2>&1; tail -5 "$OUT/profile.txt"
