#!/usr/bin/env bash
# The two pieces call.sh's deadline cut: BERT-large 2048 B4 compiled seeded (needs <= 48,377 MB;
# standard's 54,586 is in call.sh's record) and the compiled BERT-large S512 SDPA bench cell.
# One after the other (a concurrent job would perturb the bench's rounds). ~8 min on nvidia-h200.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-seeded-inline/call2.sh   # carry .carry/whl .carry/mrpc .carry/vocab
source runs/lanes.sh
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-190} ))
S=multirun/seeded_inline
M="python3 -m pmexp.train -m experiment=compile_matrix trainer.compile=true attention=eager logger=none"
step large $M dropout=seeded model=bert_large seq_len=2048 trainer.batch_size=4 hydra.sweep.dir=$S/bert_large_2048
wait_lanes
tar czf $OUT/multirun.tgz $S
summarize $S
timeout 270 python3 -m pmexp.bench step --parts step --cells bert_large_512_sdpa --modes compiled \
  --variants standard seeded again:standard --reps 5 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md" 2>/dev/null || tail -20 "$OUT/compiled.log"
