#!/usr/bin/env bash
# H200 call 2 (issue 12): call 1's blocks of 20 steps gave per-round ratios of 0.6-1.7 on MiniLM (the host's
# speed drifts), so here the variants alternate step by step (host_step's default): MiniLM fp32 and bf16 eager
# with the trainer's 2D padding mask, and MiniLM fp32 compiled (the bench cell's fixed mask, as the 0.928 record),
# standard / packed / seeded with an A/A control. Run from the repo root by the device tool:
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-eager-host/call2.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 570 ))
V="standard packed seeded again:standard"
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1  # build once, outside any timing
step fp32_eager python3 -m pmexp.bench.host_step --cell minilm_mrpc --padded --variants $V --rounds 40 --per-round 10 \
  --out "$OUT/r/fp32_eager"
step bf16_eager python3 -m pmexp.bench.host_step --cell minilm_bf16 --padded --variants $V --rounds 40 --per-round 10 \
  --out "$OUT/r/bf16_eager"
step fp32_compiled python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 40 \
  --per-round 10 --out "$OUT/r/fp32_compiled"
wait_lanes
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call2.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
