#!/usr/bin/env bash
# Run in the eighth session at 9b145f1 (results: this folder's README). Compiled `seeded` with its
# Triton custom ops instead of the traced hash (PMEXP_COMPILED_DROPOUT=custom_op): the mask drawn by
# an opaque op Inductor cannot split, so backward should store nothing of the probabilities' size for
# it. The cells where the traced hash misses seeded's memory target (runs/2026-11-29-compile-rerun:
# TinyBERT 2048 B16 eager needs <= 19,982 MB against standard's 22,984; BERT-large 2048 B4 <= 48,377
# against 54,586), standard and seeded traced (the default) beside seeded custom_op, one job at a
# time. ~8 min on nvidia-h200 (compiles are 30-130 s a job). Run on main.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-seeded-hash/call_custom_op.sh   # carry .carry/whl
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-540} ))
S=multirun/seeded_custom_op
M="python3 -m pmexp.train -m experiment=compile_matrix trainer.compile=true attention=eager logger=none"
step tiny_traced $M dropout=standard,seeded model=tinybert seq_len=2048 trainer.batch_size=16 hydra.sweep.dir=$S/tinybert_2048_traced
PMEXP_COMPILED_DROPOUT=custom_op step tiny_custom $M dropout=seeded model=tinybert seq_len=2048 \
  trainer.batch_size=16 hydra.sweep.dir=$S/tinybert_2048_custom_op
PMEXP_COMPILED_DROPOUT=custom_op step large_custom $M dropout=standard,seeded model=bert_large seq_len=2048 \
  trainer.batch_size=4 hydra.sweep.dir=$S/bert_large_2048_custom_op
wait_lanes
tar czf $OUT/multirun.tgz $S
tar czf $OUT/logs.tgz -C $OUT logs
summarize $S
