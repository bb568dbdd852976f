#!/usr/bin/env bash
# NOT RUN YET. The trainer's three step modes again, with what the first run (call.sh, b01584a) lacked:
# data.drop_last=true (one batch shape: no last-batch recompile; the trainer also leaves compiling steps out
# of seq/s now), three seeds, and the variants alternating job by job (Hydra runs the last override
# fastest: seed 0 standard, seed 0 packed, seed 1 standard, ...), so each packed/standard ratio is a pair of
# neighbouring jobs. MiniLM architecture, random init (see call.sh), fidelity settings, one epoch.
# One call per MODE, ~3-6 min each on nvidia-h200:
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
timeout 520 python3 -m pmexp.train -m logger=none experiment=fidelity data=mrpc model.pretrained=false \
  data.drop_last=true trainer.epochs=1 seed=0,1,2 dropout=standard,packed $FLAGS hydra.sweep.dir=$S \
  > "$OUT/train.log" 2>&1
tail -3 "$OUT/train.log"
summarize $S | tee "$OUT/summary.txt"
timeout 60 python3 -m pmexp.report $S --out "$OUT/report" > "$OUT/report.log" 2>&1; tail -3 "$OUT/report.log"
tar czf "$OUT/records.tgz" $S 2>/dev/null
