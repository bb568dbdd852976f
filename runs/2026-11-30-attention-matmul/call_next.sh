#!/usr/bin/env bash
# Run in the eighth session at 9b145f1 (results: this folder's README). After 3724467 (CUDA fuses the
# attention matmul only on the kernel path; dropout.fuse) and the CUDA parametrization of the
# checkpointing test: the attention tests on CUDA first, then the eager cells the fusion changes and
# the graphed cells it newly runs in (whole steps as CUDA graphs go through the fused path), fused
# against unfused, interleaved. ~8 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-attention-matmul/call_next.sh   (device tool, carry .carry/whl)
PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh  # the carried wheels, PYTHONPATH, the native build dir; needs PMEXP_COMMIT
python3 -m pmexp.dropout.native 2>&1 | tail -1
gate 120 tests/test_attention_matmul.py tests/test_train_gpu.py
timeout 200 python3 -m pmexp.bench step --parts step --cells minilm_mrpc bert_large_512_sdpa --modes eager \
  --variants standard packed unfused:packed seeded packed_exact --reps 7 --steps 6 --out "$OUT/eager" > "$OUT/eager.log" 2>&1
cat "$OUT/eager/step.md" 2>/dev/null || tail -20 "$OUT/eager.log"
timeout 200 python3 -m pmexp.bench step --parts step --cells minilm_mrpc tinybert_512 bert_large_512 --modes graphed \
  --variants standard packed unfused:packed seeded --reps 5 --steps 8 --out "$OUT/graphed" > "$OUT/graphed.log" 2>&1
cat "$OUT/graphed/step.md" 2>/dev/null || tail -20 "$OUT/graphed.log"
