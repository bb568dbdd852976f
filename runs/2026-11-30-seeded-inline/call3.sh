#!/usr/bin/env bash
# call2.sh's deadline cut BERT-large 2048 seeded again: its first step (compile) takes 126 s against
# standard's 75 (the realize threshold at 48 keeps more inline: bigger kernels to compile), the job
# ~190 s with the extension build. Here alone, 8 steps (the peak is set by step 2's compiled graph),
# then the compiled TinyBERT S512 profile of call_profile.sh (standard vs packed, with Inductor's
# output code), which the session's device time has no other room for. ~7.5 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-seeded-inline/call3.sh   # carry .carry/whl .carry/mrpc .carry/vocab
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-250} ))
S=multirun/seeded_inline
M="python3 -m pmexp.train -m experiment=compile_matrix trainer.compile=true attention=eager logger=none"
step large $M dropout=seeded model=bert_large seq_len=2048 trainer.batch_size=4 trainer.max_steps=8 hydra.sweep.dir=$S/bert_large_2048_8steps
wait_lanes
tar czf $OUT/multirun.tgz $S
summarize $S
TORCH_LOGS=output_code timeout 170 python3 -m pmexp.bench.profile_step --cell tinybert_512 --mode compiled \
  --variants standard packed --rows 25 > "$OUT/tinybert_compiled.txt" 2> "$OUT/tinybert_code.log"
gzip -f "$OUT/tinybert_code.log"; grep -h "^## " "$OUT"/*.txt
