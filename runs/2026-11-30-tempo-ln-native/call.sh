#!/usr/bin/env bash
# Run 2026-11-30 (twelfth session): 1896cad failed 7 LayerNorm tests (out-1/), 7a1acf8 passed (out/); README.md. One call, ~8 min on nvidia-h200: Tempo LayerNorm's C++ node
# (pmexp.tempo.native: forward torch's plus the device-side weight check, backward a CUDA port of the
# Triton kernel) built and tested, its host cost per call (was 295 us forward+backward against stock's
# 166: runs/2026-11-30-tempo-native), then BERT-large S512 B16 eager steps (tempo:packed was 0.969x of
# standard, 0.946x of packed at 997ee1a; target >= 0.95x), then graphed BERT-large S2048 with the bench's
# variants all warmed up before any capture (out of memory at 997ee1a).
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-tempo-ln-native/call.sh   # carry .carry/whl
source runs/lanes.sh
timeout 240 python3 -m pmexp.tempo.native > "$OUT/build.log" 2>&1; tail -1 "$OUT/build.log"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_tempo_native_gpu.py tests/test_tempo_gpu.py \
  -k "native or layer_norm or host_sync or bert" > "$OUT/tests.log" 2>&1; tail -3 "$OUT/tests.log"
grep -q " passed" "$OUT/tests.log" && ! grep -q -E "[0-9] (failed|error)" "$OUT/tests.log" || { echo "tests did not pass"; exit 1; }
timeout 60 python3 -m pmexp.bench.tempo_host --out "$OUT/host" > "$OUT/host.log" 2>&1
grep "^|" "$OUT/host/tempo_host.md" 2>/dev/null || tail -5 "$OUT/host.log"
timeout 150 python3 -m pmexp.bench step --parts step --cells bert_large_512 --modes eager \
  --variants standard packed tempo:packed again:standard --reps 7 --out "$OUT/step" > "$OUT/step.log" 2>&1
grep "^|\|^Dropout" "$OUT/step/step.md" 2>/dev/null || tail -20 "$OUT/step.log"
timeout 150 python3 -m pmexp.bench step --parts step --cells bert_large_2048 --modes graphed \
  --variants standard packed seeded again:standard --reps 5 --out "$OUT/graphed_2048" > "$OUT/graphed_2048.log" 2>&1
cat "$OUT/graphed_2048/step.md" 2>/dev/null || tail -20 "$OUT/graphed_2048.log"
