"""Job records on disk: hashing, strict JSON, flushed step lines, multirun status counting."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pmexp.experiment.callbacks import JobStatusCallback, count_statuses
from pmexp.experiment.records import (
    SCHEMA_VERSION,
    StepLog,
    config_hash,
    read_record,
    same_config,
    schema_of,
    write_record,
)

RUNS = Path(__file__).resolve().parents[1] / "runs"


def test_config_hash_is_stable_and_ignores_reporting_keys():
    a = {"seed": 0, "model": {"name": "x"}, "force": False, "logger": {"name": "none"}, "job_dir": "/a"}
    b = {"logger": {"name": "wandb"}, "job_dir": "/b", "force": True, "model": {"name": "x"}, "seed": 0}
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash({**a, "seed": 1})


def test_every_committed_record_matches_its_config_by_its_schema():
    """The committed records, of schema 1 (written before the version existed) and of the current one,
    are recognised for resume."""
    records = [json.loads(p.read_text()) for p in sorted(RUNS.rglob("metrics.json"))]
    hashed = [r for r in records if isinstance(r, dict) and r.get("config_hash")]
    assert len(hashed) >= 100  # runs/ holds several campaigns; a walk that finds none proves nothing
    assert all(same_config(r["config"], r) for r in hashed)
    assert {schema_of(r) for r in hashed} <= set(range(1, SCHEMA_VERSION + 1))


def test_schema_versions_hash_late_keys_their_own_way():
    """Schema 1 left trainer.strategy/compile_backend out at their defaults; the current schema hashes every key."""
    config = {"seed": 0, "trainer": {"lr": 1e-4, "strategy": "single", "compile_backend": "inductor"}}
    older = {"seed": 0, "trainer": {"lr": 1e-4}}  # as a config was before those keys existed
    assert config_hash(config, schema=1) == config_hash(older, schema=1)
    assert config_hash(config) != config_hash(older)
    new_record = {"schema": SCHEMA_VERSION, "config_hash": config_hash(config)}
    assert same_config(config, new_record) and not same_config(older, new_record)
    # data.drop_last (schema 4) at its default: a schema-3 record still matches the config that now has it
    data_now = {"seed": 0, "data": {"name": "mrpc", "drop_last": False}}
    schema3 = {"schema": 3, "config_hash": config_hash({"seed": 0, "data": {"name": "mrpc"}}, schema=3)}
    assert same_config(data_now, schema3)
    assert not same_config({"seed": 0, "data": {"name": "mrpc", "drop_last": True}}, schema3)
    ddp = {"seed": 0, "trainer": {**config["trainer"], "strategy": "ddp"}}
    assert not same_config(ddp, {"config_hash": config_hash(config, schema=1)})


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


def test_a_job_another_multirun_is_running_in_the_same_sweep_dir_is_not_this_sweeps_failure(tmp_path):
    from pmexp.experiment.joblock import JobLock

    _job(tmp_path / "mine", "ok")
    _job(tmp_path / "theirs", "running")  # a second multirun's job, its process alive and holding the lock
    _job(tmp_path / "dead", "running")  # nobody holds it: a job that died, still this sweep's problem
    lock = JobLock(tmp_path / "theirs")
    assert lock.acquire()  # flock: another open file description conflicts, in this process too
    try:
        counts, bad = count_statuses(tmp_path, since=time.time() - 60)
    finally:
        lock.release()
    assert counts == {"ok": 1, "running elsewhere": 1, "running": 1}
    assert [p.parent.name for p, _ in bad] == ["dead"]
    counts, _ = count_statuses(tmp_path, since=time.time() - 60)
    assert counts == {"ok": 1, "running": 2}


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
