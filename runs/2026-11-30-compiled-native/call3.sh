#!/usr/bin/env bash
# H200 call 3 (issue 12): call 2's gate failed at the first Triton-backend graph test with CUDAGraph::reset's
# warnings in its stderr (an old graph destroyed during the capture). Here: capture_probe.py (which first launches
# and which mid-capture frees break a capture, each in a fresh process), then the GPU test files each in its own
# process (one broken context fails only its own file) with tests/conftest.py collecting garbage before each test,
# then call 2's benches.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-native/call3.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 575 ))
V="standard packed seeded again:standard"
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
python3 runs/2026-11-30-compiled-native/capture_probe.py > "$OUT/logs/capture_probe.log" 2>&1
cat "$OUT/logs/capture_probe.log"
for f in test_native_gpu test_gpu; do
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/$f.py > "$OUT/logs/$f.log" 2>&1
  echo "$f: $(tail -1 "$OUT/logs/$f.log")"
done
timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_compile.py > "$OUT/logs/test_compile_gpu.log" 2>&1
echo "test_compile -m gpu: $(tail -1 "$OUT/logs/test_compile_gpu.log")"
if grep -q -E "failed|error" "$OUT"/logs/test_*.log; then echo "tests did not pass: no bench"; DEADLINE=0; fi
step compiled_native python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 30 \
  --per-round 10 --out "$OUT/r/compiled_native"
step compiled_triton env PMEXP_NATIVE=0 python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --rounds 20 --per-round 10 --out "$OUT/r/compiled_triton"
wait_lanes
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call3.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
