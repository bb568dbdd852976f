#!/usr/bin/env bash
# Ran (tenth session, 30cd47a, 75 s): MiniLM MRPC fidelity cell (fp32, S128 B32) eager, 9 rounds, with the A/A row.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-compiled-next/call8.sh   # device tool, carry .carry/whl .carry/mrpc .carry/vocab
export PMEXP_COMMIT=${PMEXP_COMMIT:?} PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}; source runs/lanes.sh
timeout 150 python3 -m pmexp.bench step --parts step --cells minilm_mrpc --modes eager \
  --variants standard packed seeded again:standard --reps 9 --out "$OUT/minilm" > "$OUT/minilm.log" 2>&1
cat "$OUT/minilm/step.md"
