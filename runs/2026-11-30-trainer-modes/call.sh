#!/usr/bin/env bash
# Run 2026-11-30 (twelfth session, b01584a, random init: eager/ compiled/ graphed/, steps_4_114.md; ../2026-11-30-tempo-ln-native/README.md). Issue 12 item 3's last part: the trainer running whole steps as CUDA graphs
# (trainer.compile_mode=reduce-overhead, MRPC padded to seq_len) beside eager and compiled, on the issue's
# first cell (MiniLM on MRPC at the fidelity settings: fp32, seq 128, B32; 0.71x in the trainer before the
# C++ path). One call per MODE (~3-5 min each on nvidia-h200), standard and packed, seeds 0 and 1, one
# epoch (115 steps, the first 3 left out of throughput), jobs one after another (no lanes: seq/s is what
# is measured), the report's throughput ratios from the records.
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl MODE=eager bash runs/2026-11-30-trainer-modes/call.sh
#     (device tool, carry .carry/whl .carry/mrpc .carry/vocab [.carry/minilm-fp16]; MODE: eager, compiled, graphed)
source runs/lanes.sh
# The weights (41 MB xz) with the wheels and the tree pass the device's 64 MiB limit: without them the same
# architecture runs from random init (seq/s is the same; accuracy and F1 then only show the loop ran).
W=.carry/minilm-fp16/model.safetensors; [ -f $W.xz ] && xz -d -T0 $W.xz
if [ -f $W ]; then MODEL="model.local_path=$PWD/.carry/minilm-fp16"; else MODEL="model.pretrained=false"; fi
timeout 100 python3 -m pmexp.dropout.native > "$OUT/native.log" 2>&1; tail -1 "$OUT/native.log"
case "${MODE:?MODE=eager, compiled or graphed}" in
  eager) FLAGS="" ;;
  compiled) FLAGS="trainer.compile=true" ;;
  graphed) FLAGS="trainer.compile=true trainer.compile_mode=reduce-overhead data.pad_to_seq_len=true" ;;
  *) echo "MODE=$MODE: use eager, compiled or graphed"; exit 2 ;;
esac
S=multirun/trainer_modes/$MODE
timeout 480 python3 -m pmexp.train -m logger=none experiment=fidelity data=mrpc $MODEL \
  trainer.epochs=1 seed=0,1 dropout=standard,packed $FLAGS hydra.sweep.dir=$S > "$OUT/train.log" 2>&1
tail -3 "$OUT/train.log"
summarize $S | tee "$OUT/summary.txt"
timeout 60 python3 -m pmexp.report $S --out "$OUT/report" > "$OUT/report.log" 2>&1; tail -3 "$OUT/report.log"
tar czf "$OUT/records.tgz" $S 2>/dev/null
