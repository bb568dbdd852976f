#!/usr/bin/env bash
# H200 call 5 (issue 12): under autocast BERT's fused dropout-add never ran (the residual comes from LayerNorm in
# float32, the dropout input is bf16, and dropout_add required one dtype), so the native kernel now takes a
# half-type x with a float32 residual. GPU tests first (the new bit-exactness tests), then MiniLM bf16 eager (host
# cost, step-interleaved) and BERT-large B16 S512 eager (15 rounds). Run from the repo root by the device tool:
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-eager-host/call5.sh
# First run at 9533503: the extension did not build (torch builds with __CUDA_NO_BFLOAT16_CONVERSIONS__ and the
# no-residual kernels were instantiated for a float32 y; call5-failed-build/), so no test ran; rerun at the fix.
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 560 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
gate 240 tests/test_native_gpu.py tests/test_gpu.py
step bf16_eager python3 -m pmexp.bench.host_step --cell minilm_bf16 --padded --rounds 40 --per-round 10 \
  --out "$OUT/r/bf16_eager"
step bert_large_512 python3 -m pmexp.bench step --parts step --cells bert_large_512 --modes eager \
  --variants standard packed again:standard --reps 15 --out "$OUT/r/bert_large_512"
wait_lanes
cp -r "$OUT/logs" "$OUT/tests.log" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call5.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
