#!/usr/bin/env bash
# Ran 2026-11-30 (eleventh session, cef3a2a, 217 s; out/, runs/2026-11-30-tempo-native/README.md). One call, ~7 min on nvidia-h200: Tempo GELU's backward with g'
# gathered from a table per 16-bit y (pmexp.tempo.kernels.grad_table; the Newton kernel's own float32
# values) beside the Newton kernel and stock's backward, bf16 and fp16 at 16x512x4096 (Newton 0.276 ms
# a call in BERT-large's profile, stock ~0.064 ms); then BERT-large S512 B16 eager steps, where the
# table is Tempo's eager default for bf16 (tempo:packed / packed was 0.898x on 11-30, target >= 0.95x:
# read it from the two ratios against standard); then the table's GPU tests (-rP prints how many
# elements differ from the Newton kernel at all; the bound is 1 16-bit ulp). Also Tempo's host cost per layer kind
# (pmexp.bench.tempo_host), LayerNorm's one-kernel zero-weight check (2 launches a call, was 3) and its
# backward's partial sums (2 launches, was 5).
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-tempo-gelu-table/call.sh   # carry .carry/whl
source runs/lanes.sh
timeout 120 python3 -m pmexp.bench.tempo --dtypes bfloat16 float16 --paths stock tempo_kernel tempo_table \
  --out "$OUT/gelu.json" > "$OUT/gelu.md" 2>&1
cat "$OUT/gelu.md"
timeout 250 python3 -m pmexp.bench step --parts step --cells bert_large_512 --modes eager \
  --variants standard packed tempo:packed again:standard --reps 5 --out "$OUT/tempo" > "$OUT/tempo.log" 2>&1
cat "$OUT/tempo/step.md" 2>/dev/null || tail -20 "$OUT/tempo.log"
timeout 60 python3 -m pmexp.bench.tempo_host --out "$OUT/host" > "$OUT/host.log" 2>&1  # per layer kind, host us
cat "$OUT/host/tempo_host.md" 2>/dev/null || tail -5 "$OUT/host.log"
timeout 120 python3 -m pytest -q -p no:cacheprovider -rP tests/test_tempo_gpu.py -k table > "$OUT/tests.log" 2>&1
grep -h " differ, max " "$OUT/tests.log"
tail -3 "$OUT/tests.log"
# the rest of Tempo's GPU tests (the kernels' shared _block helper, the LayerNorm check): whatever fits
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_tempo_gpu.py -k "not table" > "$OUT/tests_rest.log" 2>&1
tail -3 "$OUT/tests_rest.log"
