#!/usr/bin/env bash
# Issue 16 on the H200s: fidelity over three GLUE tasks, long contexts, the longest sequence per
# variant, and ZeRO-2/3 (FSDP2) batch limits. NOT RUN YET: written on a CPU machine (no GPU there);
# the lead runs it. Carry the data like MRPC: .carry/sst2 and .carry/rte (copies of
# ../shared/data/{sst2,rte}, 4.8 MB together; never committed), plus the MiniLM fp16 copy.
#   bash runs/2026-11-29-evidence/campaign.sh fidelity    # nvidia-h200, ~8 min; re-run resumes
#   bash runs/2026-11-29-evidence/campaign.sh longctx     # nvidia-h200, ~10-12 min (two calls: resumes)
#   bash runs/2026-11-29-evidence/campaign.sh maxseq      # nvidia-h200, ~6 min
#   bash runs/2026-11-29-evidence/campaign.sh zero2       # nvidia-h200-x2, ~8 min (then zero3; ddp optional)
#   bash runs/2026-11-29-evidence/campaign.sh reference   # nvidia-h200, ~3 min (optimisation dynamics)
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-540} ))
S=multirun/evidence
T="python3 -m pmexp.train -m"
MINILM="model.local_path=$PWD/.carry/minilm-fp16"
case "${1:?part: fidelity, longctx, maxseq, zero2, zero3, ddp or reference}" in
fidelity)  # 60 jobs of MiniLM (host-bound at ~30 ms a step): four sweeps side by side on one GPU
  F="$T experiment=fidelity $MINILM hydra.sweep.dir=$S/fidelity"
  ( step fid_mrpc $F data=mrpc ) &
  ( step fid_rte $F data=rte ) &
  ( step fid_sst2a $F data=sst2 seed=0,1,2 ) &
  ( step fid_sst2b $F data=sst2 seed=3,4 ) &
  wait_lanes; summarize $S/fidelity ;;
longctx)  # one job at a time: peaks near the GPU's size must not meet a neighbour's
  L="$T experiment=long_context hydra.sweep.dir=$S/long_context"
  step long_tiny $L model=tinybert
  step long_base $L model=bert_base
  wait_lanes; summarize $S/long_context ;;
maxseq)  # longest seq_len per variant at batch 1 under the A100's 80 GB
  X="python3 -m pmexp.maxbatch --seq-len-search --start 4096 --seq-len-step 512 --max-seq-len 32768"
  X="$X --variants standard,packed,seeded model=bert_base precision=bf16 attention=eager trainer.batch_size=1"
  step maxseq_none $X trainer.memory_cap_gb=80 --out $S/maxseq_bert_base_eager
  step maxseq_ckpt $X trainer.memory_cap_gb=80 memory=checkpointing --out $S/maxseq_bert_base_eager_ckpt
  wait_lanes ;;
zero2|zero3|ddp)  # nvidia-h200-x2: largest per-GPU batch, BERT-large seq 512 bf16 with checkpointing, cap 80 GB
  # One strategy per call (each probe is a torchrun start, ~25 s; ~9 probes per variant).
  step "maxbatch_$1" python3 runs/2026-11-29-evidence/zero_maxbatch.py --out $S/maxbatch_$1 \
    --strategies $1 --variants standard,packed --start 64 --step 32 -- \
    model=bert_large precision=bf16 seq_len=512 attention=eager memory=checkpointing trainer.memory_cap_gb=80
  wait_lanes; cat $S/maxbatch_$1/zero_maxbatch.json ;;
reference)  # update cosine against a lockstep standard reference, and the noise floor, MiniLM on MRPC
  R="$T experiment=fidelity $MINILM data=mrpc seed=0,1 trainer.epochs=1 hydra.sweep.dir=$S/reference"
  ( step ref_variants $R dropout=packed_exact,packed,seeded trainer.reference=standard ) &
  ( step ref_floor $R dropout=standard trainer.reference=standard_reseed ) &
  wait_lanes; summarize $S/reference ;;
esac
tar czf $OUT/evidence.tgz $S 2>/dev/null
