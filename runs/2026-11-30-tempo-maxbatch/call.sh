#!/usr/bin/env bash
# Ran 2026-11-30 (eleventh session, 997ee1a, 280 s; out/, runs/2026-11-30-tempo-native/README.md). Issue 12 item 5's second target: Tempo's throughput at its largest
# batch against memory=none's best, BERT-large bf16 S512 eager attention, ~7 min on nvidia-h200.
# 1. max batch under an 80 GB cap (pmexp.maxbatch: 3 synthetic steps a probe, ~6 s each in
#    runs/2026-11-28-tempo) for memory=none standard and packed, and memory=tempo packed; the 11-28
#    figures (63 / 69 / 85) predate the attention fusion, which took packed's step peak at B16 from
#    ~22 GB to 15.3 (runs/2026-11-30-attention-matmul), so they are searched again.
# 2. each at its own largest batch, interleaved in one process (`pmexp.bench step` with variant@B; the
#    ratio is then seq/s over standard's), with the A/A row at standard's batch.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-tempo-maxbatch/call.sh   # carry .carry/whl
source runs/lanes.sh
MB="python3 -m pmexp.maxbatch --max-batch 512 --start 48 model=bert_large precision=bf16 seq_len=512 attention=eager \
  trainer.memory_cap_gb=80"
timeout 200 $MB --variants standard,packed --out "$OUT/maxbatch_none" > "$OUT/maxbatch_none.log" 2>&1
timeout 120 $MB --variants packed memory=tempo --out "$OUT/maxbatch_tempo" > "$OUT/maxbatch_tempo.log" 2>&1
VARIANTS=$(python3 - "$OUT" <<'PY'
import json, sys
best = lambda path, v: json.load(open(f"{sys.argv[1]}/{path}/maxbatch.json"))["results"][v]["max"]
s, p, t = best("maxbatch_none", "standard"), best("maxbatch_none", "packed"), best("maxbatch_tempo", "packed")
print(f"standard@{s} packed@{p} tempo:packed@{t} again:standard@{s}")
PY
) || { echo "a search did not finish: see $OUT/maxbatch_*.log"; tail -5 "$OUT"/maxbatch_*.log; exit 1; }
echo "largest batches under 80 GB: $VARIANTS"
timeout 240 python3 -m pmexp.bench step --parts step --cells bert_large_512 --modes eager --variants $VARIANTS \
  --reps 5 --out "$OUT/at_max" > "$OUT/at_max.log" 2>&1
cat "$OUT/at_max/step.md" 2>/dev/null || tail -20 "$OUT/at_max.log"
