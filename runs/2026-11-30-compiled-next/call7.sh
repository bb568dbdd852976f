#!/usr/bin/env bash
# Ran (tenth session, 30cd47a, 59 s): why graphed SDPA standard is slower than eager (profile of the replays).
#   PMEXP_COMMIT=<sha> bash runs/2026-11-30-compiled-next/call7.sh   # device tool, carry .carry/whl .carry/mrpc .carry/vocab
export PMEXP_COMMIT=${PMEXP_COMMIT:?} PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}; source runs/lanes.sh
timeout 200 python3 -m pmexp.bench.profile_step --cell bert_large_512_sdpa --mode graphed --variants standard packed \
  --rows 12 > "$OUT/sdpa_graphed.txt" 2>&1
