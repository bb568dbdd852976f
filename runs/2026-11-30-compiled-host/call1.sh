#!/usr/bin/env bash
# H200 call 1 (issue 12): the GPU tests main has not run on a GPU since bb03dcf (unpack_bits_torch takes the
# C++ draw's shifts; the reduce-overhead test's shared step loop), then where compiled packed MiniLM's forward
# spends its extra host time (fwd_host.py: forward host time with and without Inductor's size asserts,
# cProfile and torch.profiler of the forward, Inductor's generated code in the log).
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call1.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 540 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py > "$OUT/logs/test_native_gpu.log" 2>&1
echo "test_native_gpu: $(tail -1 "$OUT/logs/test_native_gpu.log")"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k compiled > "$OUT/logs/test_gpu.log" 2>&1
echo "test_gpu -k compiled: $(tail -1 "$OUT/logs/test_gpu.log")"
step fwd_host env TORCH_LOGS=output_code python3 runs/2026-11-30-compiled-host/fwd_host.py --out "$OUT/r/fwd_host"
step test_compile_gpu python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_compile.py
wait_lanes
tail -1 "$OUT/logs/test_compile_gpu.log"
cp "$OUT/r/fwd_host/fwd_host.md" "$OUT/" 2>/dev/null
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call1.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
