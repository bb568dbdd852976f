#!/usr/bin/env bash
# H200 campaign, part C: GPU tests and the dropout benchmark on the final kernel, the issue-3
# BERT-large pair, memory scaling (TinyBERT, BERT-large). From the repo root, by the device tool;
# wheels (.whl-dev) and data (.carry) are carried; results land in $OUT.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-dev/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PMEXP_MRPC_DIR=$PWD/.carry/mrpc PMEXP_VOCAB=$PWD/.carry/vocab/vocab.txt
S=multirun/h200
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py > $OUT/pytest_gpu.log 2>&1; tail -3 $OUT/pytest_gpu.log
timeout 120 python3 -m pmexp.bench dropout --out $OUT/bench --sizes 201326592 16777216 > $OUT/bench.log 2>&1
common="data=synthetic precision=bf16 trainer.max_steps=12 trainer.timing_warmup=4 trainer.eval=false"
timeout 100 python3 -m pmexp.train -m model=bert_large precision=bf16 seq_len=512 data=synthetic \
  trainer.batch_size=16 trainer.max_steps=30 trainer.timing_warmup=10 trainer.eval=false \
  data.num_train=480 dropout=standard,packed hydra.sweep.dir=$S/issue3_bert_large > $OUT/issue3.log 2>&1
timeout 140 python3 -m pmexp.train -m model=tinybert $common trainer.batch_size=64 data.num_train=768 data.num_eval=8 \
  seq_len=128,512,1024,2048 attention=eager,sdpa dropout=standard,packed,seeded,packed_hooks \
  hydra.sweep.dir=$S/mem_tinybert > $OUT/mem_tinybert.log 2>&1
timeout 200 python3 -m pmexp.train -m model=bert_large $common trainer.batch_size=16 data.num_train=192 data.num_eval=8 \
  seq_len=512,1024,2048 attention=eager,sdpa dropout=standard,packed,seeded,packed_hooks \
  hydra.sweep.dir=$S/mem_bert_large > $OUT/mem_bert_large.log 2>&1
tar czf $OUT/multirun_c.tgz multirun
grep "^|" $OUT/bench.log | head -14
python3 - <<'PY'
import json, glob
for f in sorted(glob.glob("multirun/h200/*/*/metrics.json")):
    d = json.load(open(f)); s = d["summary"]
    print(f.split("/")[2][:9], d["status"], s["model"], s["variant"], s["attention"], s["seq_len"], s["batch_size"],
          s.get("peak_allocated_mb") and round(s["peak_allocated_mb"]), s.get("saved_mask_bytes"),
          s.get("throughput_seq_s") and round(s["throughput_seq_s"], 1))
PY
