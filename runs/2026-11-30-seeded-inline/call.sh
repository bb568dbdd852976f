#!/usr/bin/env bash
# Ran in the ninth session (record: README.md here, call1/; BERT-large 2048 seeded was cut, see call2.sh, call3.sh).
# Compiled seeded with the 39-op hash and Inductor's realize threshold at 48 (pmexp.dropout.traced.
# SEEDED_INDUCTOR_OPTIONS): does seq 2048 now keep seeded's saving? Cells and settings as
# runs/2026-11-30-seeded-hash (TinyBERT 2048 B16 needs <= 19,982 MB against standard's 22,984;
# BERT-large 2048 B4 <= 48,377 against 54,586), then the compiled speed cells (TinyBERT S512, BERT-large
# S512 SDPA) interleaved with the bench. ~9.5 min on nvidia-h200. Run on the branch.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-seeded-inline/call.sh   # carry .carry/whl .carry/mrpc .carry/vocab
source runs/lanes.sh
# The tests run last: a first try gated on all of test_compile + test_gpu ran 11 of 148 tests in
# 150 s (each compiles) and spent the call; these select what the branch changed.
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-270} ))
S=multirun/seeded_inline
M="python3 -m pmexp.train -m experiment=compile_matrix trainer.compile=true attention=eager logger=none"
step tiny $M dropout=standard,seeded model=tinybert seq_len=2048 trainer.batch_size=16 hydra.sweep.dir=$S/tinybert_2048
step large $M dropout=standard,seeded model=bert_large seq_len=2048 trainer.batch_size=4 hydra.sweep.dir=$S/bert_large_2048
wait_lanes
tar czf $OUT/multirun.tgz $S
summarize $S
timeout 130 python3 -m pmexp.bench step --parts step --cells tinybert_512 bert_large_512_sdpa --modes compiled \
  --variants standard seeded again:standard --reps 5 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md" 2>/dev/null || tail -20 "$OUT/compiled.log"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_compile.py tests/test_gpu.py -k "seeded or hash" > "$OUT/tests.log" 2>&1
tail -4 "$OUT/tests.log"
