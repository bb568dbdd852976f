"""Nothing silently wrong (issue 13): diverged, invalid, locked and dead jobs recorded as such.

In-process tests use conftest's tiny CPU job; the sweeps at the end run `python -m pmexp.train -m`
with every injected fault under the basic and joblib launchers (slow: a Python start-up each).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_sweeps import LAUNCHERS, failure_text, train_cli

from pmexp.experiment.job import train
from pmexp.experiment.joblock import SKIPS_FILE, JobLock
from pmexp.experiment.records import RECORD_FILE, STEPS_FILE, read_record

QUICK = ["trainer.eval=false", "trainer.probe=false"]


def test_nan_loss_is_recorded_diverged_with_its_step(make_cfg, tmp_path):
    record = train(make_cfg("trainer.fault=nan", "trainer.max_steps=4", *QUICK))
    assert record["status"] == "diverged" and record["diverged_step"] == 2
    assert "step 2" in record["error"] and record["summary"]["steps"] == 2  # stopped there, not at 4
    assert read_record(tmp_path / "job")["status"] == "diverged"


def test_a_locked_job_dir_is_skipped_and_the_skip_recorded(make_cfg, tmp_path):
    job = tmp_path / "job"
    holder = JobLock(job)
    assert holder.acquire()  # another running job
    try:
        (job / RECORD_FILE).write_text('{"status": "running"}')
        record = train(make_cfg(*QUICK))
    finally:
        holder.release()
    assert record["status"] == "locked"
    assert json.loads((job / RECORD_FILE).read_text()) == {"status": "running"}  # not overwritten
    assert "holds" in json.loads((job / SKIPS_FILE).read_text().splitlines()[0])["reason"]
    assert train(make_cfg(*QUICK))["status"] == "ok"  # the lock is gone with its holder


def test_a_running_record_of_a_dead_process_becomes_killed_and_reruns(make_cfg, tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / RECORD_FILE).write_text(json.dumps({"status": "running", "summary": {"steps": 0}}))
    rows = [{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6}, {"epoch": 1, "eval_loss": 0.6}, {"step": 3}]
    (job / STEPS_FILE).write_text("\n".join(map(json.dumps, rows)) + "\n{torn")
    record = train(make_cfg(*QUICK))
    assert record["status"] == "ok"
    dead = json.loads((job / "metrics.attempt1.json").read_text())
    assert dead["status"] == "killed" and dead["summary"]["steps"] == 3 and "died" in dead["error"]
    assert (job / "steps.attempt1.jsonl").exists()


@pytest.mark.parametrize("content", ["null", "[]", "3"])
def test_resume_over_a_record_that_is_not_an_object(make_cfg, tmp_path, content, caplog):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / RECORD_FILE).write_text(content)
    assert train(make_cfg(*QUICK))["status"] == "ok"
    assert "not a record object" in caplog.text and RECORD_FILE in caplog.text


@pytest.mark.parametrize("content", ["null", "[]"])
def test_report_skips_a_record_that_is_not_an_object_naming_it(tmp_path, content):
    from pmexp.report.gather import gather_rows

    for name, text in [("good", '{"status": "ok", "summary": {}}'), ("bad", content)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / RECORD_FILE).write_text(text)
    with pytest.warns(UserWarning, match=rf"bad.{RECORD_FILE}: holds a JSON"):
        rows = gather_rows([tmp_path])
    assert [r["job_dir"] for r in rows] == [str(tmp_path / "good")]


# Each fault of trainer.fault, an invalid value (dropout.p=1.5) and a clean job, in one sweep.
FAULT_JOBS = {  # dropout.p, trainer.fault -> status after the sweep
    ("0.1", "null"): "ok", ("0.1", "oom"): "oom", ("0.1", "nan"): "diverged", ("1.5", "null"): "invalid",
}


def _statuses(sweep):
    found = {}
    for path in sweep.rglob(RECORD_FILE):
        record = json.loads(path.read_text())
        config = record["config"]
        key = (str(config["dropout"]["p"]), str(config["trainer"]["fault"]).replace("None", "null"))
        found[key] = record
    return found


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_fault_sweep_records_every_job_and_exits_1(tmp_path, mrpc_dir, launcher):
    """oom, nan and an invalid value beside an ok job: each recorded, the sweep goes on, exit 1."""
    extra = []
    if launcher != "basic":
        pytest.importorskip(LAUNCHERS[launcher][0])
        extra = LAUNCHERS[launcher][1]
    sweep = tmp_path / "sweep"
    run = train_cli("dropout.p=0.1,1.5", "trainer.fault=null,oom,nan", "trainer.max_steps=3", *QUICK, *extra,
                    f"hydra.sweep.dir={sweep}", mrpc_dir=mrpc_dir)
    assert run.returncode == 1, failure_text(run)
    records = _statuses(sweep)
    for key, status in FAULT_JOBS.items():
        assert records[key]["status"] == status, (key, records[key].get("error"))
    assert records["0.1", "nan"]["diverged_step"] == 2
    assert "dropout.p" in records["1.5", "null"]["error"]
    assert {r["status"] for k, r in records.items() if k[0] == "1.5"} == {"invalid"}  # all 3 of them
    assert "multirun: " in run.stderr and "invalid 3" in run.stderr  # the one-screen summary


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sigterm_and_kill9_in_a_sweep(tmp_path, mrpc_dir, launcher):
    """SIGTERM: `killed`. kill -9: nothing can write a record, so it stays `running` and the sweep's
    process (basic) or its worker pool (joblib) dies with it; a resume records it `killed` with its
    steps and runs it again."""
    extra = LAUNCHERS["joblib"][1] if launcher == "joblib" else []
    if extra:
        pytest.importorskip(LAUNCHERS["joblib"][0])
    sweep = tmp_path / "sweep"
    args = ["trainer.fault=kill9", "trainer.max_steps=3", *QUICK, *extra, f"hydra.sweep.dir={sweep}"]
    run = train_cli(*args, mrpc_dir=mrpc_dir)
    assert run.returncode != 0, failure_text(run)
    ((job, record),) = [(p.parent, json.loads(p.read_text())) for p in sweep.rglob(RECORD_FILE)]
    assert record["status"] == "running"
    again = train_cli(*args, mrpc_dir=mrpc_dir)  # the resume: the dead record is recognised first
    assert again.returncode != 0, failure_text(again)
    dead = json.loads((job / "metrics.attempt1.json").read_text())
    assert dead["status"] == "killed" and dead["summary"]["steps"] == 1
    term = train_cli("trainer.fault=sigterm", *QUICK, *extra, f"hydra.sweep.dir={tmp_path / 'term'}",
                     mrpc_dir=mrpc_dir)
    ((term_record),) = [json.loads(p.read_text()) for p in (tmp_path / "term").rglob(RECORD_FILE)]
    assert term_record["status"] == "killed"
    assert term.returncode == (1 if launcher == "joblib" else 143), failure_text(term)


@pytest.mark.slow
@pytest.mark.parametrize("override", ["trainer.bach_size=4", "dropout.p=1.5"])
def test_usage_errors_exit_2(tmp_path, mrpc_dir, override):
    """An override Hydra cannot compose, or a single run's invalid config: 2, not a job's 1."""
    from test_sweeps import run_module

    run = run_module("pmexp.train", override, f"job_dir={tmp_path / 'job'}", "trainer.device=cpu", mrpc_dir=mrpc_dir)
    assert run.returncode == 2, failure_text(run)
    assert not (tmp_path / "job" / RECORD_FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_malformed_data_and_invalid_jobs_in_a_sweep(tmp_path, mrpc_dir, launcher):
    """A malformed train.tsv fails its jobs before any model is built, naming the file and the line; an
    invalid value is recorded `invalid`; the good job runs; exit 1 under every launcher."""
    from conftest import write_fake_mrpc

    extra = []
    if launcher != "basic":
        pytest.importorskip(LAUNCHERS[launcher][0])
        extra = LAUNCHERS[launcher][1]
    bad = write_fake_mrpc(tmp_path / "bad_mrpc")
    lines = (bad / "train.tsv").read_text().splitlines()
    lines[4] = "x" + lines[4][1:]  # line 5 of the file: a label that is not one
    (bad / "train.tsv").write_text("\n".join(lines) + "\n")
    sweep = tmp_path / "sweep"
    run = train_cli(f"data.dir={mrpc_dir},{bad}", "dropout.p=0.1,1.5", "trainer.max_steps=2", *QUICK, *extra,
                    f"hydra.sweep.dir={sweep}", mrpc_dir=mrpc_dir)
    assert run.returncode == 1, failure_text(run)
    found = {}
    for path in sweep.rglob(RECORD_FILE):
        record = json.loads(path.read_text())
        found[Path(record["config"]["data"]["dir"]).name, str(record["config"]["dropout"]["p"])] = record
    assert found[mrpc_dir.name, "0.1"]["status"] == "ok"
    assert found["bad_mrpc", "0.1"]["status"] == "failed"
    assert "train.tsv, line 5" in found["bad_mrpc", "0.1"]["error"], found["bad_mrpc", "0.1"]["error"]
    assert {found[d, "1.5"]["status"] for d in (mrpc_dir.name, "bad_mrpc")} == {"invalid"}
