#!/usr/bin/env bash
# Follow-up on one nvidia-h200: compiled `packed` drawing its bits in rows of 8
# (pmexp.dropout.traced.draw_bits) against compiled `standard`, eager attention, where the
# campaign's packed (packing torch's mask of the input's shape) ran at 0.82-0.90x of standard.
# Warm Inductor's caches three jobs at a time, then measure one job at a time (see campaign.sh).
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-400} ))
S=multirun/packed_rows
M="python3 -m pmexp.train -m experiment=compile_matrix trainer.compile=true attention=eager"
T2="model=tinybert seq_len=2048 trainer.batch_size=16"
T5="model=tinybert seq_len=512 trainer.batch_size=64"
L5="model=bert_large seq_len=512 trainer.batch_size=16"
W="trainer.max_steps=1 trainer.probe=false"
( step warm_T2 $M $T2 dropout=standard,packed $W hydra.sweep.dir=multirun/warm/T2
  step warm_T5 $M $T5 dropout=standard,packed $W hydra.sweep.dir=multirun/warm/T5 ) &
( step warm_L5s $M $L5 dropout=standard $W hydra.sweep.dir=multirun/warm/L5s ) &
( step warm_L5p $M $L5 dropout=packed $W hydra.sweep.dir=multirun/warm/L5p ) &
( step pytest_gpu python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -k "inductor or sdpa_routing or opcheck or statistics" ) &
wait_lanes
step tiny2048 $M $T2 dropout=standard,packed hydra.sweep.dir=$S/tinybert_2048
step tiny512 $M $T5 dropout=standard,packed hydra.sweep.dir=$S/tinybert_512
step large512 $M $L5 dropout=standard,packed hydra.sweep.dir=$S/bert_large_512
cat $OUT/logs/lanes.txt; tail -3 $OUT/logs/pytest_gpu.log
tar czf $OUT/multirun.tgz $S
tar czf $OUT/logs.tgz -C $OUT logs
summarize $S
