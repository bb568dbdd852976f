#!/usr/bin/env bash
# H200 call 10 (issue 12): gates for f52cb6a's merged_draws refactor (never run on a GPU), then where compiled
# packed's extra CPU time a MiniLM step goes (calls 8-9: +0.5 ms with the same kernels and fewer Python calls):
# pmexp.bench.cpu_ops (self CPU time by profiler event and by thread, interleaved) and host_step's new main-thread
# CPU column.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call10.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 520 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py > "$OUT/logs/test_native_gpu.log" 2>&1
echo "test_native_gpu: $(tail -1 "$OUT/logs/test_native_gpu.log")"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "compiled or statically" > "$OUT/logs/test_gpu.log" 2>&1
echo "test_gpu -k 'compiled or statically': $(tail -1 "$OUT/logs/test_gpu.log")"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_compile.py -m gpu > "$OUT/logs/test_compile.log" 2>&1
echo "test_compile -m gpu: $(tail -1 "$OUT/logs/test_compile.log")"
if grep -q -E "failed|error" "$OUT"/logs/test_*.log; then grep -E "^(FAILED|ERROR)|Error" "$OUT"/logs/test_*.log | head -20; echo "tests did not pass: no bench"; DEADLINE=0; fi
step cpu_ops python3 -m pmexp.bench.cpu_ops --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --reps 8 --steps 5 --top 30 --out "$OUT/r/cpu_ops"
step host_step python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --rounds 40 --per-round 10 --out "$OUT/r/host_step"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -60 "$f"; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call10.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
