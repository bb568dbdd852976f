#!/usr/bin/env bash
# Issue 16 on the H200s: fidelity over three GLUE tasks, optimisation dynamics, long contexts, the
# longest sequence per variant, and ZeRO-2/3 (FSDP2) batch limits. Carry the data like MRPC:
# .carry/{mrpc,sst2,rte,vocab} (copies of ../shared/data, never committed), the MiniLM fp16 copy
# .carry/minilm-fp16 and the wheels without wandb in .carry/whl (the carry limit is 64 MiB; every job
# runs with logger=none). To fit, the weights travel xz-compressed (`xz .carry/minilm-fp16/model.safetensors`,
# 41 MB) and SST-2's train.tsv as its header and first 4,000 rows (`head -4001`: the jobs read no more,
# data.max_train_samples=4000 takes the first rows). Then through the device tool, carrying .carry:
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-29-evidence/campaign.sh single  # nvidia-h200
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-29-evidence/campaign.sh zero    # nvidia-h200-x2
# A re-run resumes: jobs whose record says ok are skipped.
#
# "single" runs every single-GPU part at once, one lane each, to fit a 30-minute device budget:
# 6 fidelity lanes and 2 reference lanes (MiniLM, host-bound, ~2 GB each), the long-context matrix and
# the seq_len search under per-process caps of 48 GiB each (trainer.memory_cap_gb, an allocator
# limit: a job past it OOMs as it would on a 48 GB card). Peak memory and OOM do not depend on the
# neighbours; throughput and step times do, so these records' seq/s are NOT speed measurements.
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-480} ))
S=multirun/evidence
T="python3 -m pmexp.train -m logger=none"
MINILM="model.local_path=$PWD/.carry/minilm-fp16"
CAP=48
case "${1:?part: single, zero or zero_resume}" in
single)
  W=.carry/minilm-fp16/model.safetensors; [ -f $W.xz ] && xz -d -T0 $W.xz
  ( step native python3 -m pmexp.dropout.native ) &  # the C++ build once (~45 s); jobs wait on its lock
  F="$T experiment=fidelity $MINILM hydra.sweep.dir=$S/fidelity"
  for task in mrpc sst2 rte; do
    ( step "fid_${task}_a" $F data=$task seed=0,1,2 ) &
    ( step "fid_${task}_b" $F data=$task seed=3,4 ) &
  done
  # Optimisation dynamics: update cosine against a lockstep standard reference, and the noise floor.
  R="$T experiment=fidelity $MINILM data=mrpc seed=0,1 trainer.epochs=1 hydra.sweep.dir=$S/reference"
  ( step ref_variants $R dropout=packed_exact,packed,seeded trainer.reference=standard ) &
  ( step ref_floor $R dropout=standard trainer.reference=standard_reseed ) &
  # Long contexts: 48 short jobs (TinyBERT, BERT-base; 4096, 8192; eager, SDPA; checkpointing off, on).
  ( step long_ctx $T experiment=long_context trainer.memory_cap_gb=$CAP hydra.sweep.dir=$S/long_context ) &
  # The longest seq_len per variant at batch 1 (BERT-base, eager), checkpointing off then on.
  X="python3 -m pmexp.maxbatch --seq-len-search --start 4096 --seq-len-step 512 --max-seq-len 32768"
  X="$X --variants standard,packed,seeded model=bert_base precision=bf16 attention=eager trainer.batch_size=1"
  ( step maxseq_none $X trainer.memory_cap_gb=$CAP --out $S/maxseq_bert_base_eager
    step maxseq_ckpt $X trainer.memory_cap_gb=$CAP memory=checkpointing --out $S/maxseq_bert_base_eager_ckpt ) &
  wait_lanes
  summarize $S/fidelity $S/reference $S/long_context > $OUT/summary.txt; wc -l $OUT/summary.txt
  cat $S/maxseq_*/maxbatch.json 2>/dev/null ;;
zero)  # nvidia-h200-x2: largest per-GPU batch, BERT-large seq 512 bf16 with checkpointing, 40 GiB cap
  # Each probe is a torchrun start (~25 s); the fit probes two batches, then verifies the boundary.
  step maxbatch_zero python3 runs/2026-11-29-evidence/zero_maxbatch.py --out $S/maxbatch_zero \
    --strategies zero2,zero3,ddp --variants standard,packed --fit 32,96 --step 4 -- \
    model=bert_large model.pretrained=false precision=bf16 seq_len=512 attention=eager memory=checkpointing \
    trainer.memory_cap_gb=40
  wait_lanes; cat $S/maxbatch_zero/zero_maxbatch.json ;;
zero_resume)  # the second x2 call: the first was cut inside zero2/packed (268 fit); zero3 from there
  Z="python3 runs/2026-11-29-evidence/zero_maxbatch.py --step 4"
  O="model=bert_large model.pretrained=false precision=bf16 seq_len=512 attention=eager memory=checkpointing"
  O="$O trainer.memory_cap_gb=40"
  step zero2_packed $Z --out $S/maxbatch_zero2_packed --strategies zero2 --variants packed \
    --near zero2/packed=272 -- $O
  step zero3 $Z --out $S/maxbatch_zero3 --strategies zero3 --variants standard,packed --near zero3/standard=280 -- $O
  wait_lanes; cat $S/maxbatch_zero*/zero_maxbatch.json ;;
esac
tar czf $OUT/evidence.tgz $S 2>/dev/null
tar czf $OUT/logs.tgz -C $OUT logs 2>/dev/null && rm -rf $OUT/logs
