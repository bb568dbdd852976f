#!/usr/bin/env bash
# H200 call 3 (issue 12, compiled MiniLM): call 2 measured compiled packed at 0.901 of standard's seq/s with
# +1.74 ms of forward host time and 20 of its 59 extra launches through Triton's own launcher (philox_bits, a
# user-defined kernel). Here: Inductor's static launcher for user-defined kernels, then that plus combo kernels
# (independent small kernels, e.g. the seed draws, launched as one). Run from the repo root by the device tool:
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-eager-host/call3.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 570 ))
V="standard packed again:standard"
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
step static python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 30 --per-round 10 \
  --inductor static_launch_user_defined_triton_kernels=True --out "$OUT/r/static"
step static_combo python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 30 \
  --per-round 10 --inductor static_launch_user_defined_triton_kernels=True combo_kernels=True --out "$OUT/r/static_combo"
wait_lanes
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call3.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
