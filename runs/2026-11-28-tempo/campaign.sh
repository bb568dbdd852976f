#!/usr/bin/env bash
# Issues 5 and 6 on an nvidia-h200-x4 (one lane per GPU; issue 5 takes two).
# Issue 5: BERT-large bf16 seq_len 512 B16 per GPU, standard vs packed, trainer.strategy=ddp and
#   zero1 over 2 GPUs (torchrun), and the same on one GPU (strategy=single) as the reference.
# Issue 6: conf/experiment/memory_matrix.yaml ({none, checkpointing, tempo, tempo_checkpointing} x
#   {standard, packed}, eager attention) on BERT-large (bf16 seq 512 and 1024, fp32 seq 512) and
#   TinyBERT (bf16 and fp32, seq 512); the largest BERT-large batch at seq_len 512, bf16, under an
#   80 GB cap for each memory option (pmexp.maxbatch).
# Re-running resumes (ok jobs are skipped; a max-batch search needs a new --out). Also finishes
# what runs/2026-11-28-compile/campaign.sh left of BERT-large (its multirun/compile carried back).
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-520} ))
D=multirun/ddp; S=multirun/tempo
DDP="model=bert_large data=synthetic precision=bf16 seq_len=512 trainer.batch_size=16 trainer.max_steps=25 \
  trainer.timing_warmup=5 trainer.eval=false data.num_train=800 data.num_eval=8"
MM="python3 -m pmexp.train -m experiment=memory_matrix"
MB="python3 -m pmexp.maxbatch --variants standard,packed --max-batch 2048 model=bert_large precision=bf16 \
  seq_len=512 attention=eager trainer.memory_cap_gb=80"
FINE="--start 32"; COARSE="--start 64 --batch-step 16"  # checkpointing reaches hundreds: multiples of 16
# memory=none's max batch is runs/2026-11-28-h200/maxbatch_bert_large (same settings, same search).
C="python3 -m pmexp.train -m experiment=compile_matrix model=bert_large"  # issue 7's unfinished cells
( export CUDA_VISIBLE_DEVICES=0,1
  for strategy in ddp zero1; do for v in standard packed; do
    step ${strategy}_$v torchrun --standalone --nproc_per_node=2 -m pmexp.train $DDP trainer.strategy=$strategy \
      dropout=$v job_dir=$D/${strategy}_$v
  done; done
  CUDA_VISIBLE_DEVICES=0 step compile_large512 $C seq_len=512 trainer.batch_size=16 hydra.sweep.dir=multirun/compile/bert_large_512 ) &
( sleep 3; while pgrep -f "nproc_per_node=2" > /dev/null; do sleep 5; done  # GPU 1 is issue 5's until then
  export CUDA_VISIBLE_DEVICES=1
  step maxbatch_tempo $MB $FINE memory=tempo --out $S/maxbatch_tempo
  step compile_large2048 $C seq_len=2048 trainer.batch_size=4 hydra.sweep.dir=multirun/compile/bert_large_2048 ) &
( export CUDA_VISIBLE_DEVICES=2
  step single $MM model=bert_large precision=bf16 seq_len=512 trainer.batch_size=16 memory=none \
    trainer.max_steps=25 data.num_train=800 hydra.sweep.dir=$D/single
  step large_bf16_512 $MM model=bert_large precision=bf16 seq_len=512 trainer.batch_size=16 hydra.sweep.dir=$S/bert_large_bf16_512
  step maxbatch_checkpointing $MB $COARSE memory=checkpointing --out $S/maxbatch_checkpointing ) &
( export CUDA_VISIBLE_DEVICES=3
  step maxbatch_tempo_checkpointing $MB $COARSE memory=tempo_checkpointing --out $S/maxbatch_tempo_checkpointing
  step tiny_bf16_512 $MM model=tinybert precision=bf16 seq_len=512 trainer.batch_size=64 hydra.sweep.dir=$S/tinybert_bf16_512
  step large_fp32_512 $MM model=bert_large precision=fp32 seq_len=512 trainer.batch_size=8 hydra.sweep.dir=$S/bert_large_fp32_512 ) &
wait_lanes
tar czf $OUT/multirun_tempo_ddp.tgz $S $D multirun/compile/bert_large_512 multirun/compile/bert_large_2048
tar czf $OUT/logs.tgz -C $OUT logs
summarize $D $S
for f in $S/maxbatch_*/maxbatch.json; do echo $f; python3 -c "import json,sys; d=json.load(open('$f')); print({k: v for k, v in d.items() if k != 'probes'})" | cut -c1-400; done
