#!/usr/bin/env bash
# H200 call 5 (issue 12): compiled seeded's seeds merged into one randint a graph (branch seeded-merged-seeds:
# pmexp.dropout.merged_draws.merge_seed_draws, in seeded's Inductor options). Gates: tests/test_native_gpu.py
# (incl. the merged-draw test parametrized for seeded, and main's 41e46d3 helper assert_fresh_masks, not yet run
# on a GPU), test_gpu.py's compiled tests; then compiled MiniLM fp32 step by step with all three variants, and
# compiled TinyBERT S512 (speed and peak with seeded).
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call5.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 540 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py > "$OUT/logs/test_native_gpu.log" 2>&1
echo "test_native_gpu: $(tail -1 "$OUT/logs/test_native_gpu.log")"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k compiled > "$OUT/logs/test_gpu.log" 2>&1
echo "test_gpu -k compiled: $(tail -1 "$OUT/logs/test_gpu.log")"
if grep -q -E "failed|error" "$OUT"/logs/test_*.log; then grep -E "^(FAILED|ERROR)|Error" "$OUT"/logs/test_*.log | head -20; echo "tests did not pass: no bench"; DEADLINE=0; fi
step compiled_seeds python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed seeded again:standard --rounds 40 --per-round 10 --out "$OUT/r/compiled_seeds"
step tinybert_512 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled \
  --variants standard seeded again:standard --reps 5 --out "$OUT/r/tinybert_512"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -30 "$f"; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call5.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
