#!/usr/bin/env bash
# Ran (commits 10fe59a, 097aefe; record: README.md here). Branch attention-dropout-matmul: eager attention's
# dropout -> matmul without matmul's copy of the dropped probabilities (pmexp.dropout.attention_matmul).
# First its tests on CUDA (the C++ eager path's autograd node is called directly there: only a GPU can
# check that), then the price: the step bench with each variant fused and `unfused:<v>`, interleaved,
# eager, with each step's peak above the resident model. ~7 min on nvidia-h200.
#   git checkout attention-dropout-matmul && PMEXP_COMMIT=<sha> bash runs/2026-11-30-attention-matmul/call.sh
#   (device tool, carry .carry/whl). Merge only if tests.log passes and the fused steps keep >= 0.99x of
#   unfused's throughput; if the memory is worth a cost, make the fusion opt-in instead.
PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh  # the carried wheels, PYTHONPATH, the native build dir; needs PMEXP_COMMIT
python3 -m pmexp.dropout.native 2>&1 | tail -1
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_attention_matmul.py tests/test_surgery.py > "$OUT/tests.log" 2>&1
tail -4 "$OUT/tests.log"
grep -q " passed" "$OUT/tests.log" && ! grep -q -E "failed|error" "$OUT/tests.log" || { echo "tests did not pass: no bench"; exit 1; }
timeout 380 python3 -m pmexp.bench step --parts step --cells bert_large_512 tinybert_512 bert_large_2048 --modes eager \
  --variants standard packed unfused:packed seeded unfused:seeded --reps 7 --steps 6 --out "$OUT/steps" > "$OUT/steps.log" 2>&1
cat "$OUT/steps/step.md" 2>/dev/null || tail -20 "$OUT/steps.log"
