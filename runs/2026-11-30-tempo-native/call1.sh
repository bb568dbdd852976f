#!/usr/bin/env bash
# Eleventh session, call 1 of 2 (nvidia-h200): Tempo GELU's C++ node (pmexp.tempo.native) and Tempo's
# attention handing fusable calls to PM-Drop's fused attention. Builds both extensions, runs their GPU
# tests, then GELU per call (stock, Newton, Triton table, native) and host microseconds per layer kind.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-tempo-native/call1.sh   # carry .carry/whl
source runs/lanes.sh
t0=$(date +%s)
timeout 200 python3 -m pmexp.tempo.native > "$OUT/build.log" 2>&1; tail -2 "$OUT/build.log"
timeout 150 python3 -m pmexp.dropout.native >> "$OUT/build.log" 2>&1; tail -1 "$OUT/build.log"
echo "builds: $(( $(date +%s) - t0 )) s"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_tempo_native_gpu.py tests/test_tempo_gpu.py \
  -k "native or hands or not table" > "$OUT/tests.log" 2>&1; tail -4 "$OUT/tests.log"
timeout 90 python3 -m pmexp.bench.tempo --dtypes bfloat16 --paths stock tempo_kernel tempo_table tempo_native \
  --out "$OUT/gelu.json" > "$OUT/gelu.md" 2>&1; grep "^|" "$OUT/gelu.md"
timeout 60 python3 -m pmexp.bench.tempo_host --out "$OUT/host" > "$OUT/host.log" 2>&1
grep "^|" "$OUT/host/tempo_host.md" 2>/dev/null || tail -5 "$OUT/host.log"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py -x > "$OUT/tests_dropout_native.log" 2>&1
tail -2 "$OUT/tests_dropout_native.log"
