#!/usr/bin/env bash
# Shared prologue of the H200 campaigns (sourced by runs/*/campaign*.sh from the repo root, by the
# device tool): install the carried wheels, point pmexp at the carried data, and run "lanes": one
# background shell per GPU, each a list of steps bounded by one deadline, so a long step is cut
# (its job recorded as killed, resumable) and the call still returns its results.
#   DEADLINE=$(( $(date +%s) + 530 )); lane 0 step1 ... ; wait_lanes
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site ${PMEXP_WHEELS:-.whl-dev}/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PMEXP_MRPC_DIR=$PWD/.carry/mrpc PMEXP_VOCAB=$PWD/.carry/vocab/vocab.txt
export PMEXP_NATIVE_DIR=$PWD/.native-build  # torch's build lock: concurrent jobs wait for one build
export PMEXP_SST2_DIR=$PWD/.carry/sst2 PMEXP_RTE_DIR=$PWD/.carry/rte  # carried like MRPC (issue 16)
: "${PMEXP_COMMIT:?set PMEXP_COMMIT to the commit being run (no .git on the device)}"
mkdir -p "$OUT/logs"

# step NAME CMD...: run CMD until the deadline, log to $OUT/logs/NAME.log, note its exit code.
step() {
  local name=$1; shift
  local left=$(( DEADLINE - $(date +%s) ))
  if (( left < 20 )); then echo "$name: skipped (deadline)" >> "$OUT/logs/lanes.txt"; return; fi
  local t0=$(date +%s)
  timeout -s TERM -k 15 "$left" "$@" > "$OUT/logs/$name.log" 2>&1
  echo "$name: rc=$? ${left}s-left took=$(( $(date +%s) - t0 ))s" >> "$OUT/logs/lanes.txt"
}
wait_lanes() { wait; cat "$OUT/logs/lanes.txt"; }
# gate SECONDS TEST_FILES...: pytest them into $OUT/tests.log; exit the call unless they passed.
gate() {
  local seconds=$1; shift
  timeout "$seconds" python3 -m pytest -q -p no:cacheprovider "$@" > "$OUT/tests.log" 2>&1
  tail -4 "$OUT/tests.log"
  grep -q " passed" "$OUT/tests.log" && ! grep -q -E "failed|error" "$OUT/tests.log" || { echo "tests did not pass: no bench"; exit 1; }
}
# One line per job record under the given folders (status, settings, peak MB, mask bytes, seq/s).
summarize() {
  python3 - "$@" <<'PY'
import glob, json, sys
for root in sys.argv[1:]:
    for f in sorted(glob.glob(f"{root}/**/metrics.json", recursive=True)):
        d = json.load(open(f)); s = d["summary"]
        r = lambda v, n=0: None if v is None else round(v, n)
        print(d["status"], s["model"], s["variant"], s.get("memory"), s.get("strategy"), s["attention"],
              "C" if s.get("compile") else "-", s["precision"], s["seq_len"], s["batch_size"],
              r(s.get("peak_allocated_mb")), s.get("saved_mask_bytes"), r(s.get("throughput_seq_s"), 1),
              (d.get("error") or "")[:80])
PY
}
