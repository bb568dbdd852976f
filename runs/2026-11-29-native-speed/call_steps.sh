#!/usr/bin/env bash
# H200 call (issue 12): eager steps of every cell (native backend), a per-variant check of whole-step
# CUDA graphs (one process each, launch-blocking, so a failure names its variant), compiled TinyBERT.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-29-native-speed/call_steps.sh    (device tool, carry .whl-dev)
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-dev/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PMEXP_NATIVE_DIR=$PWD/.native-build
: "${PMEXP_COMMIT:?set PMEXP_COMMIT}"
python3 -m pmexp.dropout.native
timeout 330 python3 -m pmexp.bench step --parts step --modes eager --reps 7 --steps 10 --out "$OUT/eager" > "$OUT/eager.log" 2>&1
cat "$OUT/eager/step.md" 2>/dev/null || tail -5 "$OUT/eager.log"
for v in standard packed seeded packed_exact; do
  CUDA_LAUNCH_BLOCKING=1 timeout 40 python3 -c "
import torch, sys
from pmexp.bench.step import make_step
step = make_step('minilm_mrpc', '$v', 'graphed')
for _ in range(3): step()
torch.cuda.synchronize(); print('graphed $v: ok')" > "$OUT/graph_$v.log" 2>&1 || { echo "graphed $v: FAILED"; grep -E "Error|File \"/work" "$OUT/graph_$v.log" | tail -6; }
  tail -1 "$OUT/graph_$v.log"
done
timeout 150 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled --reps 5 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md" 2>/dev/null || tail -5 "$OUT/compiled.log"
