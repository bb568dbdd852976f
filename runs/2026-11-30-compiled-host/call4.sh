#!/usr/bin/env bash
# H200 call 4 (issue 12): kernels.cu's keep test and bit store as one device helper each (forward_kernel and
# bits_kernel had repeated them), and the C++ node saves x's dtype only where backward reads it (DropoutAdd):
# the native build and tests/test_native_gpu.py (bit for bit against Triton, the philox_bits op, dropout-add).
# Then compile_time.py: what merging compiled packed's draws costs at compile time.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call4.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 330 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py > "$OUT/logs/test_native_gpu.log" 2>&1
echo "test_native_gpu: $(tail -1 "$OUT/logs/test_native_gpu.log")"
mkdir -p "$OUT/r"
step compile_time python3 runs/2026-11-30-compiled-host/compile_time.py --out "$OUT/r/compile_time.json"
wait_lanes
cat "$OUT/logs/compile_time.log"
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call4.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
