#!/usr/bin/env bash
# Ran 2026-11-30 at d53ebb2, each MODE (run2/, run2.md; record: runs/2026-11-30-compiled-bits).
# The trainer's three step modes again, with what the first run (call.sh, b01584a) lacked:
# data.drop_last=true (one batch shape: no last-batch recompile; the trainer also leaves compiling steps out
# of seq/s now) and the order balanced. In the first run Hydra ran standard then packed for each seed (the
# last override varies fastest), and its eager jobs slowed down job by job (median step 13.9, 15.3, 20.9,
# 22.4 ms), so packed, always second, took the drift. Here two sweeps, one process each: seed 0 standard
# then packed, seed 1 packed then standard (A B B A). MiniLM architecture, random init (see call.sh),
# fidelity settings, one epoch. One call per MODE, ~3-6 min each on nvidia-h200:
#   PMEXP_COMMIT=<sha> PMEXP_WHEELS=.carry/whl MODE=graphed bash runs/2026-11-30-trainer-modes/call2.sh
#     (device tool, carry .carry/whl .carry/mrpc .carry/vocab; MODE: eager, compiled, graphed)
source runs/lanes.sh
timeout 100 python3 -m pmexp.dropout.native > "$OUT/native.log" 2>&1; tail -1 "$OUT/native.log"
case "${MODE:?MODE=eager, compiled or graphed}" in
  eager) FLAGS="" ;;
  compiled) FLAGS="trainer.compile=true" ;;
  graphed) FLAGS="trainer.compile=true trainer.compile_mode=reduce-overhead data.pad_to_seq_len=true" ;;
  *) echo "MODE=$MODE: use eager, compiled or graphed"; exit 2 ;;
esac
S=multirun/trainer_modes2/$MODE
for order in "0 standard,packed" "1 packed,standard"; do
  set -- $order
  timeout 260 python3 -m pmexp.train -m logger=none experiment=fidelity data=mrpc model.pretrained=false \
    data.drop_last=true trainer.epochs=1 seed=$1 dropout=$2 $FLAGS hydra.sweep.dir=$S/seed$1 \
    > "$OUT/train_seed$1.log" 2>&1
  tail -2 "$OUT/train_seed$1.log"
done
summarize $S | tee "$OUT/summary.txt"
timeout 60 python3 -m pmexp.report $S/seed0 $S/seed1 --out "$OUT/report" > "$OUT/report.log" 2>&1; tail -3 "$OUT/report.log"
tar czf "$OUT/records.tgz" $S 2>/dev/null
