#!/usr/bin/env bash
# After the size threshold (masked_matmul.MIN_PROBABILITIES, 16M a call): the attention tests, MiniLM fp32
# and bf16 eager with 30 steps a round (6 were too few for a 15 ms step: two identical paths read 1.043
# and 0.898 in call.sh), MiniLM bf16 graphed, BERT-large S512 eager (still fused). ~4 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-fuse-policy/call2.sh   (device tool, carry .carry/whl)
PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh
gate 90 tests/test_attention_matmul.py
timeout 100 python3 -m pmexp.bench step --parts step --cells minilm_mrpc minilm_bf16 --modes eager graphed \
  --variants standard packed unfused:packed seeded --reps 7 --steps 30 --out "$OUT/minilm" > "$OUT/minilm.log" 2>&1
cat "$OUT/minilm/step.md" 2>/dev/null || tail -20 "$OUT/minilm.log"
timeout 90 python3 -m pmexp.bench step --parts step --cells bert_large_512 --modes eager \
  --variants standard packed unfused:packed --reps 5 --steps 6 --out "$OUT/large" > "$OUT/large.log" 2>&1
cat "$OUT/large/step.md" 2>/dev/null || tail -20 "$OUT/large.log"
