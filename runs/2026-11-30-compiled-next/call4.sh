#!/usr/bin/env bash
# Ran (tenth session, 30cd47a, 173 s): profiles of the misses left (MiniLM bf16 eager, Tempo BERT-large),
# and compiled TinyBERT standard/packed twice with 20 steps (call2's 5-step host figure read 24.5 ms).
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-compiled-next/call4.sh   # device tool, carry .carry/whl .carry/mrpc .carry/vocab
export PMEXP_COMMIT=${PMEXP_COMMIT:?} PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}; source runs/lanes.sh
P="python3 -m pmexp.bench.profile_step"
timeout 100 $P --cell minilm_bf16 --variants standard packed --steps 10 > "$OUT/minilm_bf16.txt" 2>&1
timeout 150 $P --cell bert_large_512 --variants packed tempo:packed --rows 25 > "$OUT/tempo.txt" 2>&1
timeout 150 $P --cell tinybert_512 --mode compiled --variants standard packed standard packed --steps 20 --rows 14 \
  > "$OUT/tinybert_compiled.txt" 2>&1
grep -h "^## \|^stalling" "$OUT"/*.txt
