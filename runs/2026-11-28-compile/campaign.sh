#!/usr/bin/env bash
# Issue 7 on an nvidia-h200-x4 (one lane per GPU): GPU tests, then TinyBERT and BERT-large at
# seq_len 512 and 2048, bf16, {eager, sdpa} x {compiled, not} x {standard, packed, seeded}
# (conf/experiment/compile_matrix.yaml); the attention-core benchmark (eager/compiled, traced and
# custom-op builds of packed/seeded, SDPA). Re-running resumes: jobs whose record says ok are skipped.
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-450} ))
S=multirun/compile
M="python3 -m pmexp.train -m experiment=compile_matrix"
T="model=tinybert"; L="model=bert_large"
# Smoke runs of the next campaign's paths (issues 5 and 6): two-GPU zero1, Tempo.
SMOKE="model=tinybert data=synthetic precision=bf16 seq_len=512 trainer.batch_size=16 trainer.max_steps=3 trainer.eval=false data.num_train=96 data.num_eval=8"
( export CUDA_VISIBLE_DEVICES=0
  step smoke_tempo python3 -m pmexp.train -m $SMOKE memory=tempo,tempo_checkpointing dropout=packed,seeded \
    hydra.sweep.dir=$S/smoke/tempo
  step pytest_gpu python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_tempo_gpu.py tests/test_train_gpu.py
  step bench_tempo python3 -m pmexp.bench tempo --out $OUT/logs/bench_tempo.json
  step bench_attention python3 -m pmexp.bench attention --out $OUT/logs/bench_attention
  step tiny2048_eager $M $T seq_len=2048 trainer.batch_size=16 trainer.compile=false hydra.sweep.dir=$S/tinybert_2048 ) &
( CUDA_VISIBLE_DEVICES=0,1 step smoke_zero1 torchrun --standalone --nproc_per_node=2 -m pmexp.train $SMOKE \
    trainer.strategy=zero1 dropout=packed job_dir=$S/smoke/zero1  # shares GPU 0 with lane 0's tests
  export CUDA_VISIBLE_DEVICES=1
  step large512 $M $L seq_len=512 trainer.batch_size=16 hydra.sweep.dir=$S/bert_large_512 ) &
( export CUDA_VISIBLE_DEVICES=2
  step large2048_compiled $M $L seq_len=2048 trainer.batch_size=4 trainer.compile=true hydra.sweep.dir=$S/bert_large_2048 ) &
( export CUDA_VISIBLE_DEVICES=3
  step tiny512 $M $T seq_len=512 trainer.batch_size=64 hydra.sweep.dir=$S/tinybert_512
  step large2048_eager $M $L seq_len=2048 trainer.batch_size=4 trainer.compile=false hydra.sweep.dir=$S/bert_large_2048
  step tiny2048_compiled $M $T seq_len=2048 trainer.batch_size=16 trainer.compile=true hydra.sweep.dir=$S/tinybert_2048 ) &
wait_lanes
tail -3 $OUT/logs/pytest_gpu.log
tar czf $OUT/multirun_compile.tgz $S
tar czf $OUT/logs.tgz -C $OUT logs
summarize $S
