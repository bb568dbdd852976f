#!/usr/bin/env bash
# H200 call 2 (issue 12): compiled packed's C++ draws merged into one call per graph (pmexp.dropout.merged_draws,
# in packed's Inductor options, which the bench and the trainer pass). Gates: tests/test_native_gpu.py (new: the
# merged draw's one call, fresh masks plain and as CUDA graphs, checkpointed draws left alone), test_gpu.py's
# compiled tests; then compiled MiniLM fp32 step by step (the cell call 1 explained), compiled TinyBERT S512
# (speed and peak: the merged bits stay alive through backward), test_compile's GPU tests, and compiled
# BERT-large S2048 (peak) if the deadline allows.
#   export PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl; bash runs/2026-11-30-compiled-host/call2.sh
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + 550 ))
V="standard packed seeded again:standard"
python3 -m pmexp.dropout.native > "$OUT/logs/native.log" 2>&1
tail -1 "$OUT/logs/native.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py > "$OUT/logs/test_native_gpu.log" 2>&1
echo "test_native_gpu: $(tail -1 "$OUT/logs/test_native_gpu.log")"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k compiled > "$OUT/logs/test_gpu.log" 2>&1
echo "test_gpu -k compiled: $(tail -1 "$OUT/logs/test_gpu.log")"
if grep -q -E "failed|error" "$OUT"/logs/test_*.log; then grep -E "^(FAILED|ERROR)|Error" "$OUT"/logs/test_*.log | head -20; echo "tests did not pass: no bench"; DEADLINE=0; fi
step compiled_merged python3 -m pmexp.bench.host_step --cell minilm_mrpc --mode compiled --variants $V --rounds 24 \
  --per-round 10 --out "$OUT/r/compiled_merged"
step tinybert_512 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled \
  --variants standard packed again:standard --reps 5 --out "$OUT/r/tinybert_512"
step test_compile_gpu python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_compile.py
step bert_large_2048 python3 -m pmexp.bench step --parts step --cells bert_large_2048 --modes compiled \
  --variants standard packed --reps 3 --out "$OUT/r/bert_large_2048"
wait_lanes
tail -1 "$OUT/logs/test_compile_gpu.log"
for f in "$OUT"/r/*/*.md; do echo "== $f"; head -30 "$f"; done
cp -r "$OUT/logs" "$OUT/r/" && tar -C "$OUT" -czf "$OUT/call2.tgz" r && rm -rf "$OUT/r" "$OUT/logs"
