#!/usr/bin/env bash
# H200 call (issue 12): whole training steps as CUDA graphs, variants interleaved (the last device minutes).
#   PMEXP_COMMIT=<sha> bash runs/2026-11-29-native-speed/call_graphed.sh    (device tool, carry .whl-dev)
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-dev/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PMEXP_NATIVE_DIR=$PWD/.native-build
: "${PMEXP_COMMIT:?set PMEXP_COMMIT}"
python3 -m pmexp.dropout.native
timeout 150 python3 -m pmexp.bench step --parts step --cells minilm_mrpc tinybert_512 bert_large_512 --modes graphed --reps 5 --steps 8 --out "$OUT/graphed" > "$OUT/graphed.log" 2>&1
cat "$OUT/graphed/step.md" 2>/dev/null || { grep done "$OUT/graphed.log"; python3 -c "
import json; d=json.load(open('$OUT/graphed/step.json'))
for r in d['rows'][0]['step']:
    q=r['ratio_vs_standard']; print(r['cell'],r['mode'],r['variant'],round(r['step_ms_median'],2),round(q['median'],3),round(q['min'],3),round(q['max'],3))"; }
