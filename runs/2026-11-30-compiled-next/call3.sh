#!/usr/bin/env bash
# Ran (tenth session, 30cd47a, 110 s): call2.sh's compiled BERT-large SDPA bench had hit its 300 s timeout
# with 4 variants on a cold Inductor cache; rerun alone on the warm machine, 4 rounds.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-compiled-next/call3.sh   # device tool, carry .carry/whl .carry/mrpc .carry/vocab
export PMEXP_COMMIT=${PMEXP_COMMIT:?} PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}; source runs/lanes.sh
timeout 540 python3 -m pmexp.bench step --parts step --cells bert_large_512_sdpa --modes compiled \
  --variants standard packed seeded again:standard --reps 4 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md"
