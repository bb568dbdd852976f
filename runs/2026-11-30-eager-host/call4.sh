#!/usr/bin/env bash
# H200 call 4 (issue 12, compiled MiniLM): call 3 showed the static-launch option passed to torch.compile never
# reaches Inductor's compile workers (philox_bits still went through Triton's launcher); the workers read it from
# the environment. Here with TORCHINDUCTOR_STATIC_LAUNCH_USER_DEFINED_TRITON_KERNELS=1, without and with combo
# kernels. Run from the repo root by the device tool:
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-eager-host/call4.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 570 ))
V="standard packed again:standard"
export TORCHINDUCTOR_STATIC_LAUNCH_USER_DEFINED_TRITON_KERNELS=1
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
step env_static python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 30 \
  --per-round 10 --out "$OUT/r/env_static"
step env_static_combo python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 30 \
  --per-round 10 --inductor combo_kernels=True --out "$OUT/r/env_static_combo"
wait_lanes
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call4.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
