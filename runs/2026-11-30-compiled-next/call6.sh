#!/usr/bin/env bash
# Ran (tenth session, 30cd47a, 72 s): the graphed cells not measured since the graph fix (SDPA, S2048).
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-compiled-next/call6.sh   # device tool, carry .carry/whl .carry/mrpc .carry/vocab
export PMEXP_COMMIT=${PMEXP_COMMIT:?} PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}; source runs/lanes.sh
timeout 290 python3 -m pmexp.bench step --parts step --cells bert_large_512_sdpa bert_large_2048 --modes graphed \
  --variants standard packed seeded again:standard --reps 3 --out "$OUT/graphed" > "$OUT/graphed.log" 2>&1
cat "$OUT/graphed/step.md"
