#!/usr/bin/env bash
# Eleventh session, call 2 of 2 (nvidia-h200, warm after call1: extensions built): BERT-large S512 B16
# eager steps, standard / packed / tempo:packed interleaved with the A/A row (Tempo target: >= 0.95x of
# packed at one batch).
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-tempo-native/call2.sh   # carry .carry/whl
source runs/lanes.sh
timeout 500 python3 -m pmexp.bench step --parts step --cells bert_large_512 --modes eager \
  --variants standard packed tempo:packed again:standard --reps 5 --out "$OUT/step" > "$OUT/step.log" 2>&1
grep "^|\|^Dropout" "$OUT/step/step.md" 2>/dev/null || tail -20 "$OUT/step.log"
