#!/usr/bin/env bash
# H200 call 13 (issue 12): is the model built first favoured? In calls 6-12 the A/A control (built last) ran
# 0.990-0.999 of standard (built first) in every call. Compiled MiniLM, host_step, 100 rounds, built in reverse
# (packed, seeded, again:standard, then standard), then in call 12's order, one after the other on one host.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call13.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 420 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
step reversed python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants packed seeded again:standard standard --rounds 100 --per-round 10 --out "$OUT/r/reversed"
step forward python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed seeded again:standard --rounds 100 --per-round 10 --out "$OUT/r/forward"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; sed -n 5,11p "$f" | cut -d'|' -f2,6,7,15; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call13.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
