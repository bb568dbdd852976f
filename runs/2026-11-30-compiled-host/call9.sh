#!/usr/bin/env bash
# H200 call 9 (issue 12): compiled MiniLM with the three variants step by step once more at 1fa9b65's code (short
# kernel names, merged seeds and draws): a second host moment for call 8's ratios.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call9.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 230 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
step compiled_short_2 python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed seeded again:standard --rounds 48 --per-round 10 --out "$OUT/r/compiled_short_2"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -16 "$f"; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call9.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
