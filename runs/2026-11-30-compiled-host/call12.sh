#!/usr/bin/env bash
# H200 call 12 (issue 12): the benches now compile each variant's model apart (pmexp.bench.step.compile_apart:
# a code object of its own; call 11 found every variant but standard and its A/A twin failing the others' Dynamo
# guards before finding its own frame, the "TorchDynamo Cache Lookup" packed paid more). Compiled MiniLM again:
# host_step over 100 rounds with the three variants, cpu_ops; then compiled TinyBERT S512 if time is left.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call12.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 540 ))
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
step host_step python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled \
  --variants standard packed seeded again:standard --rounds 100 --per-round 10 --out "$OUT/r/host_step"
step cpu_ops python3 -m pmexp.bench.cpu_ops --cell minilm_mrpc --mode compiled \
  --variants standard packed again:standard --reps 12 --steps 5 --top 30 --out "$OUT/r/cpu_ops"
step tinybert_512 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled \
  --variants standard packed seeded again:standard --reps 5 --out "$OUT/r/tinybert_512"
wait_lanes
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -34 "$f" | cut -c1-400; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call12.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
