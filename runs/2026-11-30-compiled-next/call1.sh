#!/usr/bin/env bash
# Ran in the tenth session at 30cd47a (record: README.md here, call1/). Branch compiled-next = main +
# seeded-keyed-hash + packed-philox-bits. Call 1 of 2, ~9.5 min on nvidia-h200:
#  - does the keyed hash at realize threshold 52 keep compiled seeded's seq-2048 saving? (TinyBERT B16
#    needs <= 19,982 MB, was 19,838 at 48 unkeyed; BERT-large B4 <= 48,377, was 48,067; 8 steps: its
#    compile alone takes ~2 min)
#  - compiled TinyBERT S512: packed with pmexp::philox_bits (0.953x before) and seeded (1.083x before),
#    interleaved with the A/A row;
#  - last, the compile tests the two branches changed.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl bash runs/2026-11-30-compiled-next/call1.sh   # carry .carry/whl .carry/mrpc .carry/vocab
source runs/lanes.sh
# The two jobs run side by side on the one GPU (peaks are per process; their seq/s are not comparable,
# the bench below measures speed): BERT-large's compile alone took 118-126 s at threshold 48.
DEADLINE=$(( $(date +%s) + ${LANE_SECONDS:-280} ))
S=multirun/compiled_next
M="python3 -m pmexp.train -m experiment=compile_matrix trainer.compile=true attention=eager logger=none dropout=seeded"
step tiny $M model=tinybert seq_len=2048 trainer.batch_size=16 hydra.sweep.dir=$S/tinybert_2048 &
step large $M model=bert_large seq_len=2048 trainer.batch_size=4 trainer.max_steps=8 hydra.sweep.dir=$S/bert_large_2048 &
wait_lanes
tar czf $OUT/multirun.tgz $S
summarize $S
timeout 180 python3 -m pmexp.bench step --parts step --cells tinybert_512 --modes compiled \
  --variants standard packed seeded again:standard --reps 5 --out "$OUT/compiled" > "$OUT/compiled.log" 2>&1
cat "$OUT/compiled/step.md" 2>/dev/null || tail -20 "$OUT/compiled.log"
timeout 80 python3 -m pytest -q -p no:cacheprovider tests/test_compile.py -k "hash or seeded_backward or keeps_bits_or_seeds" \
  > "$OUT/tests.log" 2>&1
tail -3 "$OUT/tests.log"
