#!/usr/bin/env bash
# H200 call 4 (issue 12), on a fresh machine (an empty Triton cache): the C++ draw now takes the element count as an
# empty (n, 0) tensor instead of the dropout's input (an extern op's inputs are buffers to Inductor), and the
# eager warm-ups of randint and the device-seed Triton kernel are gone (call 3's probe: randint first launched
# inside a capture is fine; the failures were an old graph freed by the GC mid-capture). Here: the probe's Triton
# case (fixed), tests/test_native_gpu.py whole and test_gpu.py's compiled tests (gates), then compiled MiniLM fp32
# step by step and compiled TinyBERT S512 (a cell whose kernels, not its host, set the pace), then test_compile's
# GPU tests (bits kept, not masks).
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-native/call4.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 540 ))
V="standard packed seeded again:standard"
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
python3 runs/2026-11-30-compiled-native/capture_probe.py > "$OUT/logs/capture_probe.log" 2>&1
cat "$OUT/logs/capture_probe.log"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py > "$OUT/logs/test_native_gpu.log" 2>&1
echo "test_native_gpu: $(tail -1 "$OUT/logs/test_native_gpu.log")"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k compiled > "$OUT/logs/test_gpu.log" 2>&1
echo "test_gpu -k compiled: $(tail -1 "$OUT/logs/test_gpu.log")"
if grep -q -E "failed|error" "$OUT"/logs/test_*.log; then echo "tests did not pass: no bench"; DEADLINE=0; fi
step compiled_native python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 24 \
  --per-round 10 --out "$OUT/r/compiled_native"
step tinybert_512 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled \
  --variants standard packed again:standard --reps 5 --out "$OUT/r/tinybert_512"
step test_compile_gpu python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_compile.py
wait_lanes
tail -1 "$OUT/logs/test_compile_gpu.log"
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call4.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
