#!/usr/bin/env bash
# H200 campaign, part D: fidelity (all-MiniLM-L6-v2 on MRPC, 5 seeds x 4 variants, 3 epochs) and
# the largest batch of BERT-large at seq_len 512 under an 80 GB cap (the seed's A100 size).
# The MiniLM weights travel as an fp16 copy (.carry/minilm-fp16, 45 MB: the carry limit is 64 MiB)
# and are loaded as fp32.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-dev/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PMEXP_MRPC_DIR=$PWD/.carry/mrpc PMEXP_VOCAB=$PWD/.carry/vocab/vocab.txt
S=multirun/h200
timeout 330 python3 -m pmexp.train -m experiment=fidelity model.local_path=$PWD/.carry/minilm-fp16 \
  hydra.sweep.dir=$S/fidelity > $OUT/fidelity.log 2>&1
timeout 170 python3 -m pmexp.maxbatch --variants standard,packed --start 32 --out $S/maxbatch_bert_large \
  model=bert_large precision=bf16 seq_len=512 attention=eager trainer.memory_cap_gb=80 > $OUT/maxbatch.log 2>&1
tar czf $OUT/multirun_d.tgz multirun
tail -5 $OUT/maxbatch.log
python3 - <<'PY'
import json, glob
for f in sorted(glob.glob("multirun/h200/fidelity/*/metrics.json")):
    d = json.load(open(f)); s = d["summary"]
    print(d["status"], s["variant"], s["seed"], s.get("eval_f1"), s.get("eval_accuracy"), s.get("wall_time_s") and round(s["wall_time_s"]))
PY
timeout 90 python3 -m pmexp.bench.profile_step --model bert_large --variants standard packed seeded > $OUT/profile.log 2>&1
grep -A 16 "^==" $OUT/profile.log | cut -c1-200 | grep -v "^-" | head -60
