"""Job records on disk: hashing, strict JSON, flushed step lines, multirun status counting."""

from __future__ import annotations

import json
import os
import time

import pytest

from pmexp.experiment.callbacks import JobStatusCallback, count_statuses
from pmexp.experiment.records import StepLog, config_hash, read_record, write_record


def test_config_hash_is_stable_and_ignores_reporting_keys():
    a = {"seed": 0, "model": {"name": "x"}, "force": False, "logger": {"name": "none"}, "job_dir": "/a"}
    b = {"logger": {"name": "wandb"}, "job_dir": "/b", "force": True, "model": {"name": "x"}, "seed": 0}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash({**a, "seed": 1})


def test_write_record_is_strict_json(tmp_path):
    write_record(tmp_path, {"status": "ok", "summary": {"loss": float("nan"), "x": float("inf"), "n": 1.5}})
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_record(tmp_path)["summary"] == {"loss": None, "x": None, "n": 1.5}
    assert read_record(tmp_path / "missing") is None


def test_step_log_lines_are_on_disk_at_once_and_old_attempts_are_kept(tmp_path):
    log = StepLog(tmp_path)
    log.write({"step": 1, "loss": 0.5})
    # Read while the file is still open: a crash now would lose nothing.
    assert json.loads((tmp_path / "steps.jsonl").read_text()) == {"step": 1, "loss": 0.5}
    log.close()
    StepLog(tmp_path).close()
    assert (tmp_path / "steps.attempt1.jsonl").read_text().count("\n") == 1


def _job(path, status, age_s=0.0):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"status": status, "error": f"{status} error"}))
    if age_s:
        old = time.time() - age_s
        os.utime(path / "metrics.json", (old, old))


def test_count_statuses_reads_only_records_of_this_multirun(tmp_path):
    _job(tmp_path / "a", "ok")
    _job(tmp_path / "b", "oom")
    _job(tmp_path / "c", "failed", age_s=3600)  # left by an earlier multirun: not counted
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metrics.json").write_text("{broken")
    counts, bad = count_statuses(tmp_path, since=time.time() - 60)
    assert counts == {"ok": 1, "oom": 1, "failed": 1}
    assert sorted(p.parent.name for p, _ in bad) == ["b", "d"]


def test_callback_exits_1_when_a_job_is_not_ok_and_prints_a_summary(tmp_path, capsys):
    from omegaconf import OmegaConf

    callback = JobStatusCallback()
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    callback.on_multirun_start(config)
    _job(tmp_path / "a", "ok")
    callback.on_multirun_end(config)  # all ok: returns
    _job(tmp_path / "b", "oom")
    _job(tmp_path / "c", "killed")
    _job(tmp_path / "d", "diverged")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "skips.jsonl").write_text('{"reason": "locked"}\n')
    with pytest.raises(SystemExit) as exit_info:
        callback.on_multirun_end(config)
    assert exit_info.value.code == 1  # not the count of bad jobs: 2 is a usage error of the command
    summary = capsys.readouterr().err
    assert summary.splitlines()[-5].startswith("multirun: ") and "oom 1" in summary and "diverged 1" in summary
    assert "locked 1" in summary
    for name, status in [("b", "oom"), ("c", "killed"), ("d", "diverged"), ("e", "locked")]:
        assert f"{status}: {tmp_path / name}" in summary
