#!/usr/bin/env bash
# Ran 2026-11-30 at 997ee1a (all-cells/; runs/2026-11-30-tempo-native/README.md: PART=graphed, eager, and compiled for two cells). Issue 12 item 6's one record: every cell and table of `python -m pmexp.bench step`, in
# three calls under the device's 10-minute limit: PART=eager (host and per-op tables, every cell eager),
# PART=graphed (every cell as whole-step CUDA graphs), PART=compiled (every cell compiled). Variants:
# the two the targets name, standard, and again:standard (a second standard model: the A/A row that
# shows each cell's noise floor). ~6-8 min each on nvidia-h200; a cut call keeps its finished cells.
#   PMEXP_COMMIT=<sha> PART=eager bash runs/2026-11-30-fuse-policy/call_all.sh   (device tool, carry .carry/whl)
#   PMEXP_COMMIT=<sha> PART=compiled CELLS="tinybert_512 minilm_mrpc" bash runs/2026-11-30-fuse-policy/call_all.sh
PMEXP_WHEELS=${PMEXP_WHEELS:-.carry/whl}
source runs/lanes.sh
case "${PART:?set PART=eager, graphed or compiled}" in
  eager) ARGS="--parts host op step --modes eager" ;;
  graphed) ARGS="--parts step --modes graphed" ;;
  compiled) ARGS="--parts step --modes compiled" ;;
  *) echo "PART=$PART: use eager, graphed or compiled"; exit 2 ;;
esac
# PART=compiled CELLS=bert_large_2048 ran again at d53ebb2: runs/2026-11-30-compiled-bits (s2048/).
# CELLS (optional) names a subset: compiled cells take 100-340 s each with four variants on a cold Inductor
# cache (tenth session, runs/2026-11-30-compiled-next: BERT-large S512 SDPA passed 300 s cold, 110 s warm;
# BERT-large S2048 335 s), so PART=compiled needs 3 calls: CELLS="minilm_mrpc minilm_bf16 tinybert_512",
# then "bert_large_512 bert_large_512_sdpa", then bert_large_2048. PART=graphed's bert_large_2048 ran out of
# memory at 997ee1a even with the shared graph pool (later variants' eager warm-ups ran beside the pool);
# the bench warms every variant up before any capture since, not yet run on a GPU.
timeout 570 python3 -m pmexp.bench step $ARGS ${CELLS:+--cells $CELLS} --variants standard packed seeded again:standard \
  --reps 5 --out "$OUT/$PART" > "$OUT/$PART.log" 2>&1
cat "$OUT/$PART/step.md" 2>/dev/null || tail -20 "$OUT/$PART.log"
