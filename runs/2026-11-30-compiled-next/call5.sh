#!/usr/bin/env bash
# Ran (tenth session, 30cd47a, 337 s): compiled BERT-large B4 S2048, all variants interleaved (0.85x packed before).
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-compiled-next/call5.sh   # device tool, carry .carry/whl .carry/mrpc .carry/vocab
export PMEXP_COMMIT=${PMEXP_COMMIT:?} PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}; source runs/lanes.sh
timeout 560 python3 -m pmexp.bench step --parts step --cells bert_large_2048 --modes compiled \
  --variants standard packed seeded again:standard --reps 3 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md"
