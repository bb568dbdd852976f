#!/usr/bin/env bash
# H200 call 2 (issue 12): (a) call 1's capture failure, fixed for both backends by loading torch's randint kernel
# (the seed drawn under capture) in eager mode first; (b) compiled packed's draw as one C++ op
# (pmexp_native::philox_bits: the CUDA generator's Philox state, the bit shifts in its output) instead of randint,
# the Triton bits kernel and a shift kernel per call. GPU tests first (a gate), then compiled MiniLM fp32 step by
# step with the C++ draw, the same with PMEXP_NATIVE=0 (the Triton draw, as before), then compiled TinyBERT S512.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-native/call2.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 570 ))
V="standard packed seeded again:standard"
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
gate 200 tests/test_native_gpu.py tests/test_gpu.py
timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_compile.py > "$OUT/logs/tests_compile_gpu.log" 2>&1
tail -1 "$OUT/logs/tests_compile_gpu.log"
step compiled_native python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 30 \
  --per-round 10 --out "$OUT/r/compiled_native"
step compiled_triton env PMEXP_NATIVE=0 python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --rounds 20 --per-round 10 --out "$OUT/r/compiled_triton"
step tinybert_512 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled \
  --variants standard packed again:standard --reps 6 --out "$OUT/r/tinybert_512"
wait_lanes
cp -r "$OUT/logs" "$OUT/tests.log" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call2.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
