#!/usr/bin/env bash
# H200 campaign, part E: the max-batch search again after the memory-cap device fix (part D's
# failed: set_per_process_memory_fraction needs a device index). BERT-large, seq_len 512, bf16,
# eager attention, under an 80 GB cap; standard vs packed.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-dev/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
timeout 170 python3 -m pmexp.maxbatch --variants standard,packed --start 32 --out multirun/h200/maxbatch_bert_large \
  model=bert_large precision=bf16 seq_len=512 attention=eager trainer.memory_cap_gb=80 > $OUT/maxbatch.log 2>&1
tar czf $OUT/multirun_e.tgz multirun
grep -v "INFO" $OUT/maxbatch.log | tail -8; cat multirun/h200/maxbatch_bert_large/maxbatch.json
