#!/usr/bin/env bash
# H200 call 3 (issue 12): compiled MiniLM fp32 again with merged draws, more rounds and three models (the spread
# of call 2's ratios was +-5%), then fwd_host.py (the forward's host time and what differs from standard's).
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call3.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 330 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
step compiled_merged_40 python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --rounds 40 --per-round 10 --out "$OUT/r/compiled_merged_40"
step fwd_host python3 runs/2026-11-30-compiled-host/fwd_host.py --out "$OUT/r/fwd_host"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -24 "$f"; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call3.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
