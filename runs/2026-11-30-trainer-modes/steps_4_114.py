"""Seq/s per job over steps 4-114 from the committed records: step 115 (MRPC's short last batch, 20 rows)
compiled in every compiled and graphed job and took 1.7-47 s, which the trainer's seq/s at b01584a counted
(fixed since: pmexp.experiment.metrics.StepTimer leaves such steps out).

    python runs/2026-11-30-trainer-modes/steps_4_114.py > runs/2026-11-30-trainer-modes/steps_4_114.md
"""
import glob
import json
import re
import statistics
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
print("| mode | variant | seed | median step ms (steps 4-115) | seq/s as recorded | seq/s, steps 4-114 | step 115 ms |")
print("|---|---|---|---|---|---|---|")
with tempfile.TemporaryDirectory() as tmp:
    for mode in ("eager", "compiled", "graphed"):
        with tarfile.open(HERE / mode / "records.tgz") as tar:
            tar.extractall(Path(tmp) / mode, filter="data")
        for steps in sorted(glob.glob(f"{tmp}/{mode}/multirun/trainer_modes/*/*/steps.jsonl")):
            job = Path(steps).parent
            variant, seed = re.search(r"dropout=(\w+)", job.name)[1], re.search(r"seed=(\d+)", job.name)[1]
            t = [r["step_time_ms"] for r in map(json.loads, open(steps)) if "step_time_ms" in r]
            recorded = json.loads((job / "metrics.json").read_text())["summary"]["throughput_seq_s"]
            timed = t[3:-1]  # the trainer's 3 warm-up steps out, and the last (compiled) step
            print(f"| {mode} | {variant} | {seed} | {statistics.median(t[3:]):.2f} | {recorded:.1f} | "
                  f"{32 * len(timed) / (sum(timed) / 1000):.1f} | {t[-1]:,.0f} |")
