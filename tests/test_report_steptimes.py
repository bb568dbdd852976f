"""Step-time statistics of the report: one-sided Welch's test on per-step times, warm-up left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from test_report import _summary, _table_rows

from pmexp.report import build_report, gather_rows
from pmexp.report.gather import timed_step_times
from pmexp.report.stats import compare_to_standard, group_rows, slower_p
from pmexp.report.verdicts import judge

WARMUP = 2


def write_timed_job(root: Path, name: str, variant: str, seed: int, times_ms: list[float],
                    data: str = "mrpc") -> Path:
    """An ok job whose steps.jsonl holds `times_ms`, with trainer.timing_warmup=WARMUP in its config."""
    job = root / name
    job.mkdir(parents=True)
    summary = _summary(variant, 128, seed, throughput_seq_s=1000.0 / float(np.mean(times_ms[WARMUP:])))
    record = {"status": "ok", "error": None, "config": {"data": {"name": data}, "trainer": {"timing_warmup": WARMUP}},
              "summary": summary, "env": {}}
    (job / "metrics.json").write_text(json.dumps(record))
    rows = [{"step": i + 1, "loss": 1.0, "lr": 1e-4, "grad_norm": 1.0, "step_time_ms": t}
            for i, t in enumerate(times_ms)]
    (job / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return job


def _times(rng: np.random.Generator, mean: float, n: int = 40) -> list[float]:
    return [500.0, 300.0, *(mean + rng.normal(0, 1.0, n)).tolist()]  # two slow warm-up steps first


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        write_timed_job(tmp_path, f"s{seed}", "standard", seed, _times(rng, 10.0))
        write_timed_job(tmp_path, f"e{seed}", "packed_exact", seed, _times(rng, 10.0))  # same distribution
        write_timed_job(tmp_path, f"p{seed}", "packed", seed, _times(rng, 9.0))  # faster: never "slower"
        write_timed_job(tmp_path, f"d{seed}", "seeded", seed, _times(rng, 11.0))  # 1 ms slower, sd 1, n 80
    return tmp_path


def test_warmup_steps_are_left_out_as_the_trainer_does(tmp_path: Path):
    job = write_timed_job(tmp_path, "j", "standard", 0, [500.0, 300.0, 10.0, 11.0])
    assert timed_step_times(job, WARMUP) == (10.0, 11.0)
    assert timed_step_times(job, 4) == (300.0, 10.0, 11.0)  # no more steps than the warm-up: only the first
    (row,) = gather_rows([tmp_path])
    assert row["step_times_ms"] == (10.0, 11.0)  # the record's own trainer.timing_warmup


def test_one_sided_welch_matches_scipy_and_a_faster_variant_is_not_slower(sweep: Path):
    comps = {c.group.variant: c for c in compare_to_standard(group_rows(gather_rows([sweep])))}
    rows = {v: [r for r in gather_rows([sweep]) if r["variant"] == v] for v in ("standard", "seeded")}
    pooled = {v: [t for r in sorted(rs, key=lambda r: r["seed"]) for t in r["step_times_ms"]] for v, rs in rows.items()}
    expected = sps.ttest_ind(pooled["seeded"], pooled["standard"], equal_var=False, alternative="greater").pvalue
    assert comps["seeded"].step_time_p == pytest.approx(expected, rel=1e-12)
    assert comps["seeded"].step_counts == (80, 80)
    # 1 ms apart with sd 1 ms over 80 steps a side: t ~ 6.3, p ~ 1e-9; 1e-3 leaves orders of magnitude of room.
    assert comps["seeded"].slower and comps["seeded"].step_time_p < 1e-3
    assert comps["packed"].slower is False and comps["packed"].step_time_p > 0.5  # faster: p near 1
    assert comps["packed_exact"].slower is False  # same distribution: p ~ U(0, 1); seed 0 draws p > 0.05
    assert comps["seeded"].step_time_ratio == pytest.approx(np.mean(pooled["seeded"]) / np.mean(pooled["standard"]))


def test_report_table_and_verdict_say_slower_or_not(sweep: Path):
    files = build_report([sweep])
    md = files.markdown.read_text()
    table = {r[1]: r for r in _table_rows(md, "Step times against standard")}
    assert table["packed"][-1] == "not statistically slower (p > 0.05)"
    assert table["seeded"][-1].startswith("slower (p = ")
    assert table["seeded"][0].startswith("mrpc ")  # the task names the configuration
    verdicts = {(v.criterion.split(".")[0], v.variant): v.outcome for v in judge(
        compare_to_standard(group_rows(gather_rows([sweep]))))}
    assert (verdicts[("3b", "packed")], verdicts[("3b", "seeded")]) == ("PASS", "FAIL")


def test_too_few_steps_or_no_spread_is_untested():
    assert slower_p([1.0], [1.0, 2.0]) is None
    assert slower_p([5.0, 5.0], [5.0, 5.0]) is None


def test_tasks_are_separate_configurations(tmp_path: Path):
    rng = np.random.default_rng(1)
    for data in ("mrpc", "rte"):
        write_timed_job(tmp_path, f"{data}s", "standard", 0, _times(rng, 10.0), data=data)
        write_timed_job(tmp_path, f"{data}p", "packed", 0, _times(rng, 10.0), data=data)
    comps = compare_to_standard(group_rows(gather_rows([tmp_path])))
    assert sorted(c.group.settings["data"] for c in comps) == ["mrpc", "rte"]
    assert all(c.baseline.settings["data"] == c.group.settings["data"] for c in comps)
