#!/usr/bin/env bash
# Run 2026-11-30 (twelfth session, call 11, warm, commit 7a1acf8; output out-step/): compiled MiniLM MRPC
# (fp32 S128 B32), standard / packed / seeded / A-A interleaved, 9 rounds, after the profile (out/) read
# packed both faster and slower than standard in two repetitions.
#   device tool, carry .carry/whl:  bash runs/2026-11-30-compiled-minilm/step.sh
export PMEXP_COMMIT=${PMEXP_COMMIT:-7a1acf8} PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh
timeout 320 python3 -m pmexp.bench step --parts step --cells minilm_mrpc --modes compiled \
  --variants standard packed seeded again:standard --reps 9 --out "$OUT/c" > "$OUT/c.log" 2>&1
grep "^|\|^Dropout" "$OUT/c/step.md" || tail -20 "$OUT/c.log"
