"""Max-batch search: the pure doubling + bisection, and the probe records with a fake trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_BERT
from hypothesis import given, settings
from hypothesis import strategies as st

from pmexp.experiment.maxbatch import MaxBatchError, run_search, search_max, search_near
from pmexp.maxbatch import main
from pmexp.report import build_report

PROBE_KEYS = {"variant", "search", "batch_size", "seq_len", "status", "peak_allocated_mb", "time",
              "wall_time_s", "job_dir", "error"}


def below(threshold: int, seen: list[int] | None = None):
    def probe(n: int) -> bool:
        if seen is not None:
            seen.append(n)
        return n <= threshold
    return probe


def test_search_near_finds_the_limit_from_any_guess_without_probing_twice():
    for limit in (0, 1, 5, 37, 40, 41, 200):
        for guess in (0, 1, 10, 40, 41, 42, 100):
            seen: list[int] = []
            result = search_near(below(limit, seen), guess)
            assert result.best == limit and len(seen) == len(set(seen)), (limit, guess)
    seen = []
    assert search_near(below(41, seen), 40).best == 41 and seen == [40, 41, 43, 42]  # 1 off: 4 probes


def test_finds_threshold_without_repeating_a_probe() -> None:
    seen: list[int] = []
    result = search_max(below(37, seen))
    assert result.best == 37 and not result.hit_cap
    assert seen[:7] == [1, 2, 4, 8, 16, 32, 64]  # doubling to the first failure, then bisection
    assert len(seen) == len(set(seen)) and 37 in seen and 38 in seen
    assert result.probes == tuple((n, n <= 37) for n in seen)


def test_nothing_fits_gives_zero() -> None:
    assert search_max(below(0)).best == 0
    assert search_max(below(0)).probes == ((1, False),)


def test_cap_is_respected() -> None:
    seen: list[int] = []
    result = search_max(below(1000, seen), cap=50)
    assert result.best == 50 and result.hit_cap and max(seen) == 50
    assert search_max(below(37), cap=50).best == 37  # a cap above the limit changes nothing
    assert not search_max(below(37), cap=50).hit_cap


def test_failing_start_bisects_below_it() -> None:
    seen: list[int] = []
    assert search_max(below(5, seen), start=64).best == 5
    assert seen[0] == 64 and all(n < 64 for n in seen[1:])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(MaxBatchError, match="starts at 1"):
        search_max(below(3), start=0)
    with pytest.raises(MaxBatchError, match="below start"):
        search_max(below(3), start=8, cap=4)


@settings(max_examples=200, deadline=None)
@given(threshold=st.integers(0, 3000), start=st.integers(1, 300), cap=st.none() | st.integers(300, 4000))
def test_any_threshold_is_found(threshold: int, start: int, cap: int | None) -> None:
    result = search_max(below(threshold), start=start, cap=cap)
    assert result.best == (threshold if cap is None else min(threshold, cap))
    assert len(result.probes) <= 2 * 13  # logarithmic: doubling plus bisection


class FakeTrainer:
    """Stands in for pmexp.experiment.job.train: fits while batch_size * seq_len <= limit[variant]."""

    def __init__(self, limits: dict[str, int], fail: str | None = None, raise_oom: bool = False) -> None:
        self.limits, self.fail, self.raise_oom, self.calls = limits, fail, raise_oom, 0
        self.caps: set[Any] = set()

    def __call__(self, cfg: Any) -> dict[str, Any]:
        self.calls += 1
        assert cfg.trainer.max_steps == 3 and cfg.data.name == "synthetic" and cfg.logger.name == "none"
        variant, batch, seq = cfg.dropout.name, cfg.trainer.batch_size, cfg.seq_len
        assert cfg.data.num_train >= 3 * batch  # three full batches, never a truncated one
        self.caps.add(cfg.trainer.memory_cap_gb)
        tokens = batch * seq
        if self.raise_oom and tokens > self.limits[variant]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        status = "failed" if variant == self.fail else ("ok" if tokens <= self.limits[variant] else "oom")
        record = {"status": status, "error": "boom" if status == "failed" else None,
                  "config": {}, "env": {"device_name": "FakeGPU"},
                  "summary": {"model": cfg.model.name, "variant": variant, "precision": cfg.precision.name,
                              "seq_len": seq, "attention": cfg.attention, "batch_size": batch, "seed": 0,
                              "peak_allocated_mb": float(tokens) if status == "ok" else None}}
        job = Path(cfg.job_dir)
        job.mkdir(parents=True)
        (job / "metrics.json").write_text(json.dumps(record))
        return record


def _lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "maxbatch.jsonl").read_text().splitlines()]


def test_batch_search_writes_probe_records_and_result(tmp_path: Path) -> None:
    fake = FakeTrainer({"standard": 37 * 128, "packed": 45 * 128})
    state = run_search(["model=tinybert", "seq_len=128", "trainer.memory_cap_gb=10"], tmp_path,
                       variants=["standard", "packed"], train_fn=fake)
    assert fake.caps == {10}  # the memory cap reaches the trainer
    saved = json.loads((tmp_path / "maxbatch.json").read_text())
    assert saved == json.loads(json.dumps(state)) and saved["complete"]
    assert saved["results"]["standard"]["max"] == 37 and saved["results"]["packed"]["max"] == 45
    assert saved["results"]["packed"]["peak_allocated_mb"] == 45 * 128
    assert saved["settings"]["model"] == "tinybert" and saved["settings"]["seq_len"] == 128
    lines = _lines(tmp_path)
    assert len(lines) == fake.calls == sum(r["probes"] for r in saved["results"].values())
    assert all(set(line) == PROBE_KEYS for line in lines)
    std = [(line["batch_size"], line["status"]) for line in lines if line["variant"] == "standard"]
    assert std[:7] == [(1, "ok"), (2, "ok"), (4, "ok"), (8, "ok"), (16, "ok"), (32, "ok"), (64, "oom")]
    assert (37, "ok") in std and (38, "oom") in std
    assert all(Path(line["job_dir"], "metrics.json").exists() for line in lines)


def test_maxbatch_result_feeds_the_report(tmp_path: Path) -> None:
    run_search(["model=tinybert"], tmp_path, variants=["standard", "packed"],
               train_fn=FakeTrainer({"standard": 37 * 128, "packed": 45 * 128}))
    md = build_report([tmp_path]).markdown.read_text()
    assert "| tinybert fp32 eager L=128 targets=hidden,attention | batch_size | packed | 45 |" in md
    assert "| total | 0 |" in md  # probe dirs are not counted as sweep jobs
    assert "max batch 45 vs standard 37" in md and "| 5. fits where standard OOMs | packed | PASS |" in md


def test_seq_len_search_steps_and_oom_exception(tmp_path: Path) -> None:
    fake = FakeTrainer({"standard": 4 * 1000}, raise_oom=True)  # trainer lets the OOM escape
    state = run_search(["model=tinybert", "trainer.batch_size=4", "model.pretrained=false"], tmp_path,
                       variants=["standard"], search="seq_len", start=64, seq_len_step=64, train_fn=fake)
    assert state["results"]["standard"]["max"] == 960  # largest multiple of 64 <= 1000
    assert {line["status"] for line in _lines(tmp_path)} == {"ok", "oom"}
    assert all(line["batch_size"] == 4 and line["seq_len"] % 64 == 0 for line in _lines(tmp_path))


def test_failed_probe_is_recorded_and_other_variants_go_on(tmp_path: Path) -> None:
    state = run_search(["model=tinybert"], tmp_path, variants=["packed", "standard"],
                       train_fn=FakeTrainer({"standard": 37 * 128, "packed": 0}, fail="packed"))
    assert state["results"]["packed"]["max"] is None and "boom" in state["results"]["packed"]["error"]
    assert state["results"]["standard"]["max"] == 37


def test_cap_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state = run_search(["model=tinybert"], tmp_path / "a", variants=["standard"], cap=20,
                       train_fn=FakeTrainer({"standard": 10**9}))
    assert state["results"]["standard"] == {"max": 20, "peak_allocated_mb": 20 * 128.0,
                                            "hit_cap": True, "probes": 6}
    with pytest.raises(MaxBatchError, match="new --out"):
        run_search(["model=tinybert"], tmp_path / "a", train_fn=FakeTrainer({}))
    with pytest.raises(MaxBatchError, match="set by the search itself"):
        run_search(["dropout=packed"], tmp_path / "b", train_fn=FakeTrainer({}))
    assert main(["trainer.batch_size=8", "--out", str(tmp_path / "c")]) == 2
    assert "set by the search itself" in capsys.readouterr().err
    assert main(["model=tinybert", "trainer.device=cpu", "--out", str(tmp_path / "d")]) == 2
    assert "no OOM to find" in capsys.readouterr().err


@pytest.mark.slow
def test_real_trainer_probes_leave_records(tmp_path: Path) -> None:
    """The real pmexp.experiment.job.train on a 2-layer BERT on CPU: no OOM there, so the cap ends it."""
    state = run_search([*TINY_BERT, "trainer.device=cpu", "seq_len=16"], tmp_path, variants=["packed"], cap=2)
    assert state["results"]["packed"] == {"max": 2, "peak_allocated_mb": None, "hit_cap": True, "probes": 2}
    assert [(line["batch_size"], line["status"]) for line in _lines(tmp_path)] == [(1, "ok"), (2, "ok")]
    record = json.loads((tmp_path / "probes" / "packed" / "batch_size_2" / "metrics.json").read_text())
    assert record["status"] == "ok" and record["summary"]["steps"] == 3 and record["summary"]["variant"] == "packed"


def test_batch_step_searches_multiples(tmp_path: Path) -> None:
    state = run_search(["model=tinybert"], tmp_path, variants=["standard"], start=8, batch_step=8,
                       train_fn=FakeTrainer({"standard": 37 * 128}))
    assert state["results"]["standard"]["max"] == 32 and state["step"] == 8  # largest multiple of 8 <= 37
    assert all(line["batch_size"] % 8 == 0 for line in _lines(tmp_path))
    with pytest.raises(MaxBatchError, match="batch_step"):
        run_search(["model=tinybert"], tmp_path / "b", start=4, batch_step=8, train_fn=FakeTrainer({}))
