#!/usr/bin/env bash
# Its compiled TinyBERT part ran in the ninth session (runs/2026-11-30-compiled-packed); the MiniLM and Tempo parts not yet. Where the three misses left
# in issue 12 spend their time, wall against device time a step and the top kernels
# (pmexp.bench.profile_step): MiniLM bf16 eager (host-bound, 0.96-0.97x for every variant), compiled
# TinyBERT S512 packed (0.953x), Tempo on BERT-large S512 (0.898x of packed). ~6 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-fuse-policy/call_profile.sh   (device tool, carry .carry/whl)
PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh
P="python3 -m pmexp.bench.profile_step"
timeout 100 $P --cell minilm_bf16 --variants standard packed --steps 10 > "$OUT/minilm_bf16.txt" 2>&1
# Inductor's output code of both (stderr) beside the profile, to see what each graph stores and recomputes
TORCH_LOGS=output_code timeout 300 $P --cell tinybert_512 --mode compiled --variants standard packed --rows 25 \
  > "$OUT/tinybert_compiled.txt" 2> "$OUT/tinybert_code.log"; gzip -f "$OUT/tinybert_code.log"
timeout 150 $P --cell bert_large_512 --variants packed tempo:packed --rows 25 > "$OUT/tempo.txt" 2>&1
grep -h "^## " "$OUT"/*.txt
