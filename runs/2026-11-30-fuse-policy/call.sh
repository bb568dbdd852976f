#!/usr/bin/env bash
# CUDA attention fuses dropout -> matmul only where autocast casts the dropped probabilities (the
# fused backward folds that cast; without it the rebuild is an extra pass): tests, then MiniLM fp32
# (the fidelity preset, now unfused), MiniLM bf16 (host-bound, fused) and BERT-large S512 eager,
# eager and graphed, fused against unfused, interleaved. ~5 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-fuse-policy/call.sh   (device tool, carry .carry/whl)
PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh  # the carried wheels, PYTHONPATH, the native build dir; needs PMEXP_COMMIT
gate 150 tests/test_attention_matmul.py tests/test_train_gpu.py
timeout 170 python3 -m pmexp.bench step --parts step --cells minilm_mrpc minilm_bf16 bert_large_512 --modes eager \
  --variants standard packed unfused:packed seeded --reps 7 --steps 6 --out "$OUT/eager" > "$OUT/eager.log" 2>&1
cat "$OUT/eager/step.md" 2>/dev/null || tail -20 "$OUT/eager.log"
timeout 100 python3 -m pmexp.bench step --parts step --cells minilm_mrpc minilm_bf16 --modes graphed \
  --variants standard packed unfused:packed seeded --reps 5 --steps 8 --out "$OUT/graphed" > "$OUT/graphed.log" 2>&1
cat "$OUT/graphed/step.md" 2>/dev/null || tail -20 "$OUT/graphed.log"
