#!/usr/bin/env bash
# H200 call 1 (issue 12), first on a fresh machine: does branch triton-capture-warm (the Triton fallback compiles its
# device-seed kernel at the first eager launch, not inside the first CUDA-graph capture) pass the graph tests that
# failed on a fresh machine (runs/2026-11-30-eager-host, section 5)? tests/test_native_gpu.py first and whole (the
# failure needs an empty Triton cache), then tests/test_gpu.py, then bench step's `--interleave step` (never run on a
# GPU) on the SDPA eager cell, which blocks of steps left unresolved.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-native/call1.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 540 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py > "$OUT/logs/tests_native.log" 2>&1
tail -3 "$OUT/logs/tests_native.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py > "$OUT/logs/tests_gpu.log" 2>&1
tail -2 "$OUT/logs/tests_gpu.log"
step sdpa_by_step python3 -m pmexp.bench step --parts step --cells bert_large_512_sdpa --modes eager \
  --variants standard packed seeded again:standard --reps 10 --interleave step --out "$OUT/r/sdpa_by_step"
wait_lanes
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call1.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
