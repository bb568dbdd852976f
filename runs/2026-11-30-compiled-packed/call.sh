#!/usr/bin/env bash
# Never run as written: its cells were measured at 30cd47a (branch compiled-next, which holds this branch)
# by runs/2026-11-30-compiled-next/call1.sh and call3.sh; see that folder's README. (Branch packed-philox-bits.) Compiled packed drawing its bits with pmexp::philox_bits
# (4 keep decisions per Philox call) instead of Inductor's rand: is TinyBERT S512 compiled now >= 0.99x
# standard, does BERT-large S512 SDPA hold, and does the partitioner still keep only bits? Tests of what
# the branch changed first (short: the full GPU files take >150 s), then the compiled bench with the A/A
# row, then the profile beside the ninth session's (runs/2026-11-30-compiled-packed/README.md). ~8 min.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-compiled-packed/call.sh   # carry .carry/whl .carry/mrpc .carry/vocab
source runs/lanes.sh
gate 150 tests/test_gpu.py tests/test_compile.py -k "opcheck or fresh_bits or test_inductor_compile_fullgraph or keeps_bits_or_seeds"
timeout 300 python3 -m pmexp.bench step --parts step --cells tinybert_512 bert_large_512_sdpa --modes compiled \
  --variants standard packed again:standard --reps 5 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md" 2>/dev/null || tail -20 "$OUT/compiled.log"
timeout 110 python3 -m pmexp.bench.profile_step --cell tinybert_512 --mode compiled --variants standard packed \
  --rows 12 > "$OUT/tinybert_compiled.txt" 2>&1
grep -h "^## " "$OUT"/*.txt
