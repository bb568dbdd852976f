#!/usr/bin/env bash
# Issue 7 re-run on an nvidia-h200-x2 (one lane per GPU): the compiled half of the compile matrix
# (TinyBERT and BERT-large, seq 512 and 2048, bf16, {eager, sdpa} x {standard, packed, seeded}, all
# with trainer.compile=true) at the commit that (a) resets Dynamo per job and fails a job that did
# not compile (runs/2026-11-28-compile's TinyBERT SDPA packed/seeded cells had run eager), (b) fixes
# the partitioner's float32-mask choice for packed/seeded, (c) routes SDPA's math fallback through
# PM-Drop. Each (model, seq, attention) triple is one process: standard, packed, seeded side by side.
# Two calls (a call is at most 10 minutes):  bash campaign.sh 1   then   bash campaign.sh 2
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-540} ))
S=multirun/compile_rerun
M="python3 -m pmexp.train -m experiment=compile_matrix trainer.compile=true"
L512="model=bert_large seq_len=512 trainer.batch_size=16 hydra.sweep.dir=$S/bert_large_512"
L2048="model=bert_large seq_len=2048 trainer.batch_size=4 hydra.sweep.dir=$S/bert_large_2048"
T512="model=tinybert seq_len=512 trainer.batch_size=64 hydra.sweep.dir=$S/tinybert_512"
T2048="model=tinybert seq_len=2048 trainer.batch_size=16 hydra.sweep.dir=$S/tinybert_2048"
# The Triton custom ops instead of the traced torch ops (PMEXP_COMPILED_DROPOUT=custom_op), own folder.
C="dropout=packed,seeded attention=eager"
case "${1:?part 1 or 2}" in
1)
  ( export CUDA_VISIBLE_DEVICES=0
    step large512_eager $M $L512 attention=eager
    step tiny512_eager $M $T512 attention=eager ) &
  ( export CUDA_VISIBLE_DEVICES=1
    step large2048_eager $M $L2048 attention=eager
    step tiny2048_eager $M $T2048 attention=eager ) &
  ;;
2)
  ( export CUDA_VISIBLE_DEVICES=0
    step large512_sdpa $M $L512 attention=sdpa
    step tiny512_sdpa $M $T512 attention=sdpa
    step tiny2048_sdpa $M $T2048 attention=sdpa
    PMEXP_COMPILED_DROPOUT=custom_op step tiny512_custom_op $M $T512 $C hydra.sweep.dir=$S/custom_op/tinybert_512 ) &
  ( export CUDA_VISIBLE_DEVICES=1
    step large2048_sdpa $M $L2048 attention=sdpa
    step pytest_gpu python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_train_gpu.py
    PMEXP_COMPILED_DROPOUT=custom_op step large512_custom_op $M $L512 $C hydra.sweep.dir=$S/custom_op/bert_large_512 ) &
  ;;
esac
wait_lanes
[ -f $OUT/logs/pytest_gpu.log ] && tail -3 $OUT/logs/pytest_gpu.log
tar czf $OUT/multirun.tgz $S
tar czf $OUT/logs.tgz -C $OUT logs
summarize $S
