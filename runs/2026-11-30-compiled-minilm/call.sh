#!/usr/bin/env bash
# Run 2026-11-30 (twelfth session, 1896cad, out/; then step.sh, out-step/; ../2026-11-30-tempo-ln-native/README.md). Why compiled MiniLM fp32 (S128 B32) packed read 0.899 [0.743, 0.935] of standard at 997ee1a
# (seeded 0.991, A/A 1.006 [0.959, 1.075]; runs/2026-11-30-tempo-native): an 11 ms host-bound step, 20 dropout
# calls. The profile gives wall, host issue and device time and the top kernels per variant (20 steps,
# twice each, as the compiled TinyBERT profile in runs/2026-11-30-compiled-next); then Dynamo's graph and
# graph-break counts for one compiled step of each (a break in packed's graph would cost host time here
# and be hidden by device time in the larger cells). ~4 min on nvidia-h200 (cold Inductor cache).
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-compiled-minilm/call.sh   # carry .carry/whl
source runs/lanes.sh
timeout 300 python3 -m pmexp.bench.profile_step --cell minilm_mrpc --mode compiled \
  --variants standard packed standard packed --steps 20 --rows 20 > "$OUT/profile.txt" 2>&1
grep -h "^## \|^stalling" "$OUT/profile.txt"
timeout 200 python3 - > "$OUT/graphs.txt" 2>&1 <<'PY'
import torch, torch._dynamo
from pmexp.bench.step import _build_model
for variant in ("standard", "packed", "seeded"):
    torch._dynamo.reset()
    model, inputs, dtype = _build_model("minilm_mrpc", variant)
    explanation = torch._dynamo.explain(model)(**inputs)
    print(variant, "graphs", explanation.graph_count, "breaks", explanation.graph_break_count,
          [str(b.reason)[:120] for b in explanation.break_reasons][:5])
PY
cat "$OUT/graphs.txt"
