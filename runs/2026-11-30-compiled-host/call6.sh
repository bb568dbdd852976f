#!/usr/bin/env bash
# H200 call 6 (issue 12): call 5's gates passed test_native_gpu.py (119) but test_gpu.py's
# test_compiled_packed_fresh_bits_with_dynamic_shapes[triton] failed once (backward's mask not the forward's, with the
# Triton draw, the fallback where the C++ extension does not build). dynamic_triton.py repeats that case (and the
# native draw, and static shapes) to see how often and where; one run with Inductor's code logged. Then the benches
# call 5 skipped, which take the native draw: compiled MiniLM with the three variants, compiled TinyBERT S512 seeded.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call6.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 540 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
step dynamic_triton python3 runs/2026-11-30-compiled-host/dynamic_triton.py --trials 4 --out "$OUT/r/dynamic_triton"
tail -4 "$OUT/logs/dynamic_triton.log"
step dynamic_triton_code env TORCH_LOGS=output_code,aot_graphs python3 runs/2026-11-30-compiled-host/dynamic_triton.py \
  --trials 1 --paths triton --out "$OUT/r/dynamic_triton_code"
tail -2 "$OUT/logs/dynamic_triton_code.log"
step compiled_seeds python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed seeded again:standard --rounds 40 --per-round 10 --out "$OUT/r/compiled_seeds"
step tinybert_512 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled \
  --variants standard seeded again:standard --reps 5 --out "$OUT/r/tinybert_512"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -30 "$f"; done
gzip -9 "$OUT/logs/dynamic_triton_code.log"
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call6.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
