#!/usr/bin/env bash
# H200 call (issue 12): build the C++ extension, its GPU tests, host/op tables, eager and graphed steps.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-29-native-speed/call_eager.sh    (device tool, carry .whl-dev)
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-dev/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PMEXP_NATIVE_DIR=$PWD/.native-build
: "${PMEXP_COMMIT:?set PMEXP_COMMIT}"
t0=$(date +%s)
PMEXP_NATIVE_VERBOSE=1 python3 -m pmexp.dropout.native > "$OUT/build.log" 2>&1
echo "build: $(( $(date +%s) - t0 )) s; $(tail -1 "$OUT/build.log")"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_native_gpu.py -k "not triton" > "$OUT/tests.log" 2>&1
timeout 60 python3 -m pytest -q -x -p no:cacheprovider tests/test_native_gpu.py -k "triton" >> "$OUT/tests.log" 2>&1
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_dropout_layouts.py tests/test_gpu.py tests/test_tempo_gpu.py > "$OUT/tests_gpu.log" 2>&1
grep -E "passed|failed|^E " "$OUT/tests.log" "$OUT/tests_gpu.log" | head -30
timeout 120 python3 -m pmexp.bench step --parts host op --out "$OUT/micro" > "$OUT/micro.log" 2>&1
cat "$OUT/micro/step.md"
timeout ${STEP_TIMEOUT:-360} python3 -m pmexp.bench step --parts step --modes ${MODES:-eager graphed} --reps ${REPS:-5} --out "$OUT/steps" > "$OUT/steps.log" 2>&1
cat "$OUT/steps/step.md" 2>/dev/null; tail -3 "$OUT/steps.log"
