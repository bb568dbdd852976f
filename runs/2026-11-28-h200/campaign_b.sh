#!/usr/bin/env bash
# H200 campaign, part B: kernel exploration, the issue-3 BERT-large pair, memory scaling
# (TinyBERT and BERT-large). Run by the device tool from the repo root; results land in $OUT.
# Wheels (.whl-dev: hydra, omegaconf, datasets, evaluate, ...) and data (.carry) are carried.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-dev/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PMEXP_MRPC_DIR=$PWD/.carry/mrpc PMEXP_VOCAB=$PWD/.carry/vocab/vocab.txt
S=multirun/h200
python3 -m pmexp.bench.rng_variants $OUT/rng_variants.json > $OUT/rng_variants.log 2>&1
grep -v '^\s*[][{}]\|":' $OUT/rng_variants.log | tail -30
common="data=synthetic precision=bf16 trainer.max_steps=12 trainer.timing_warmup=4 trainer.eval=false"
# issue 3: the two named runs (default attention of conf: eager)
timeout 150 python3 -m pmexp.train -m model=bert_large precision=bf16 seq_len=512 data=synthetic \
  trainer.batch_size=16 trainer.max_steps=30 trainer.timing_warmup=10 trainer.eval=false \
  data.num_train=480 dropout=standard,packed hydra.sweep.dir=$S/issue3_bert_large > $OUT/issue3.log 2>&1
timeout 170 python3 -m pmexp.train -m model=tinybert $common trainer.batch_size=64 data.num_train=768 data.num_eval=8 \
  seq_len=128,512,1024,2048 attention=eager,sdpa dropout=standard,packed,seeded,packed_hooks \
  hydra.sweep.dir=$S/mem_tinybert > $OUT/mem_tinybert.log 2>&1
timeout 200 python3 -m pmexp.train -m model=bert_large $common trainer.batch_size=16 data.num_train=192 data.num_eval=8 \
  seq_len=512,1024,2048 attention=eager dropout=standard,packed,seeded,packed_hooks \
  hydra.sweep.dir=$S/mem_bert_large > $OUT/mem_bert_large.log 2>&1
tar czf $OUT/multirun_b.tgz multirun
grep -h "job ok\|status\|Error" $OUT/*.log | tail -20
python3 - <<'PY'
import json, glob
for f in sorted(glob.glob("multirun/h200/*/*/metrics.json")):
    d = json.load(open(f)); s = d["summary"]
    print(f.split("/")[2][:14], d["status"], s["model"], s["variant"], s["attention"], s["seq_len"], s["batch_size"],
          s.get("peak_allocated_mb") and round(s["peak_allocated_mb"]), s.get("saved_mask_bytes"),
          s.get("throughput_seq_s") and round(s["throughput_seq_s"], 1))
PY
