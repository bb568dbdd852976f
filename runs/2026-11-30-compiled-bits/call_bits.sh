#!/usr/bin/env bash
# Ran 2026-11-30 at 3c2d3f5 on branch compiled-hash-bits (bits/ beside this copy; README.md). PMEXP_COMPILED_BITS
# exists only on that branch: on main both runs would draw philox. Compiled packed's bits from the keyed hash in torch ops
# (PMEXP_COMPILED_BITS=hash: one Inductor reduction kernel a call, the seed's randint inlined) against the
# default pmexp::philox_bits (a randint kernel and a user-defined Triton kernel a call). Compiled MiniLM fp32
# packed read 0.861 [0.844, 0.931] of standard with philox (runs/2026-11-30-tempo-ln-native), at the same
# device time with 59 more kernels a step. One call, ~8 min on nvidia-h200 (cold Inductor cache):
# the CUDA compile tests (bits kept, nothing else), then per bits source one process each
# (ratios against that process's own interleaved standard): compiled MiniLM fp32 and TinyBERT S512
# (device-bound: the hash's extra arithmetic would show there), standard / packed / A-A, 7 rounds.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-compiled-hash-bits/call.sh   # carry .carry/whl
source runs/lanes.sh
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_compile.py -k "cuda" > "$OUT/tests.log" 2>&1; tail -1 "$OUT/tests.log"
for bits in philox hash; do
  PMEXP_COMPILED_BITS=$bits timeout 200 python3 -m pmexp.bench step --parts step --cells minilm_mrpc tinybert_512 \
    --modes compiled --variants standard packed again:standard --reps 7 --out "$OUT/$bits" > "$OUT/$bits.log" 2>&1
  echo "## PMEXP_COMPILED_BITS=$bits"; grep "^|" "$OUT/$bits/step.md" 2>/dev/null || tail -8 "$OUT/$bits.log"
done
