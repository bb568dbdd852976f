#!/usr/bin/env bash
# H200 call 7 (issue 12): why 13 of compiled seeded MiniLM's kernels skip Inductor's static launcher (call 6:
# +68 Python calls a step; seeded 0.976): launchers.py. Then dynamic_triton.py again with x at each mismatch and a
# count of exact zeros in CUDA randn (call 6's one mismatched element: x == 0 there?), and test_compile's GPU tests.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call7.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 420 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
step launchers python3 runs/2026-11-30-compiled-host/launchers.py --variants seeded,standard,packed --out "$OUT/r/launchers"
grep -v "^  " "$OUT/logs/launchers.log" | tail -5; grep "^  " "$OUT/logs/launchers.log" | head -40
step dynamic_triton python3 runs/2026-11-30-compiled-host/dynamic_triton.py --trials 4 --paths triton --out "$OUT/r/dynamic_triton"
grep -v '"mismatches": 0' "$OUT/logs/dynamic_triton.log" | tail -6
step test_compile_gpu python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_compile.py
tail -1 "$OUT/logs/test_compile_gpu.log"
wait_lanes
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call7.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
