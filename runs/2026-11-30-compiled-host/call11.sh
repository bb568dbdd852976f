#!/usr/bin/env bash
# H200 call 11 (issue 12): call 10's test_compile GPU gate ran out of its 60 s (1 of 2 passed): again with room.
# Then compiled MiniLM packed against standard once more: cpu_ops with kinds of events (Triton launches, CUDA runtime,
# aten ops, ...; kernels are named differently per variant) and every repetition kept; host_step over 100 rounds.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call11.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 520 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_compile.py -m gpu > "$OUT/logs/test_compile.log" 2>&1
echo "test_compile -m gpu: $(tail -1 "$OUT/logs/test_compile.log")"
step cpu_ops python3 -m pmexp.bench.cpu_ops --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --reps 12 --steps 5 --top 30 --out "$OUT/r/cpu_ops"
step host_step python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --rounds 100 --per-round 10 --out "$OUT/r/host_step"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -45 "$f"; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call11.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
