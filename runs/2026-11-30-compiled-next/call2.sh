#!/usr/bin/env bash
# Ran in the tenth session at 30cd47a (record: README.md here, call2/; its bench hit the 300 s timeout on a
# cold Inductor cache: rerun as call3.sh). Branch compiled-next. Call 2 of 2, ~9 min on nvidia-h200:
# compiled BERT-large S512 SDPA
# (packed 0.997x and seeded 1.012x before) with the A/A row, the compiled TinyBERT profile (standard
# against packed: did the 592 us bit-draw kernel go?), then the GPU tests of pmexp::philox_bits and of
# compiled seeded's statistics.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-compiled-next/call2.sh   # carry .carry/whl .carry/mrpc .carry/vocab
source runs/lanes.sh
timeout 300 python3 -m pmexp.bench step --parts step --cells bert_large_512_sdpa --modes compiled \
  --variants standard packed seeded again:standard --reps 5 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md" 2>/dev/null || tail -20 "$OUT/compiled.log"
timeout 100 python3 -m pmexp.bench.profile_step --cell tinybert_512 --mode compiled --variants standard packed \
  --rows 12 > "$OUT/tinybert_compiled.txt" 2>&1
grep -h "^## \|^stalling" "$OUT/tinybert_compiled.txt"
timeout 130 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py \
  -k "opcheck or fresh_bits or test_inductor_compile_fullgraph or (statistics and seeded)" > "$OUT/tests.log" 2>&1
tail -3 "$OUT/tests.log"
