"""The trainer's three step modes, second run (call2.sh at d53ebb2: data.drop_last, order A B B A), from
the committed records: per mode and seed, each job's seq/s as the trainer recorded it and its median step,
packed / standard, and the geometric mean of the two seeds (one run per order, so job order cancels).

    python runs/2026-11-30-trainer-modes/run2_table.py > runs/2026-11-30-trainer-modes/run2.md
"""
import glob
import json
import math
import re
import statistics
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ORDER = {"0": "standard, then packed", "1": "packed, then standard"}


def jobs(root: str) -> dict:
    found = {}
    for steps in glob.glob(f"{root}/multirun/trainer_modes2/*/seed*/*/steps.jsonl"):
        job = Path(steps).parent
        variant, seed = re.search(r"dropout=(\w+)", job.name)[1], re.search(r"seed=(\d+)", job.name)[1]
        times = [r["step_time_ms"] for r in map(json.loads, open(steps)) if "step_time_ms" in r]
        summary = json.loads((job / "metrics.json").read_text())["summary"]
        found[seed, variant] = (summary["throughput_seq_s"], statistics.median(times[3:]), summary["compile_steps"])
    return found


print("| mode | seed | jobs in order | standard seq/s (median step ms) | packed seq/s (median step ms) "
      "| packed / standard |")
print("|---|---|---|---|---|---|")
with tempfile.TemporaryDirectory() as tmp:
    for mode in ("eager", "compiled", "graphed"):
        with tarfile.open(HERE / "run2" / mode / "records.tgz") as tar:
            tar.extractall(Path(tmp) / mode, filter="data")
        found, ratios = jobs(f"{tmp}/{mode}"), []
        for seed in ("0", "1"):
            (s, s_ms, s_c), (p, p_ms, p_c) = found[seed, "standard"], found[seed, "packed"]
            assert s_c == p_c == 0  # no step compiled after the warm-up (drop_last: one shape)
            ratios.append(p / s)
            print(f"| {mode} | {seed} | {ORDER[seed]} | {s:.1f} ({s_ms:.2f}) | {p:.1f} ({p_ms:.2f}) | {p / s:.3f} |")
        print(f"| {mode} | both | geometric mean | | | **{math.exp(sum(map(math.log, ratios)) / 2):.3f}** |")
