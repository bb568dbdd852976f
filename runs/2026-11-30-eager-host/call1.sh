#!/usr/bin/env bash
# H200 call 1 (issue 12, eager MiniLM's host cost): where a host-bound step's host time goes, standard against
# packed with an A/A control, MiniLM fp32 and bf16 with the trainer's 2D padding mask, GC on and frozen; then
# BERT-large B16 S512 eager with 15 rounds (the >= 1.02x target). Run from the repo root by the device tool:
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-eager-host/call1.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 560 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1  # build once, outside any timing
step minilm_fp32_gc_on python3 -m pmexp.bench.host_step --cell minilm_mrpc --padded --out "$OUT/minilm_fp32_gc_on"
step minilm_fp32_gc_freeze python3 -m pmexp.bench.host_step --cell minilm_mrpc --padded --gc freeze \
  --out "$OUT/minilm_fp32_gc_freeze"
step minilm_bf16_gc_on python3 -m pmexp.bench.host_step --cell minilm_bf16 --padded --out "$OUT/minilm_bf16_gc_on"
step bert_large_512 python3 -m pmexp.bench step --parts step --cells bert_large_512 --modes eager \
  --variants standard packed again:standard --reps 15 --out "$OUT/bert_large_512"
wait_lanes
