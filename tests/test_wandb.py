"""W&B mirrors a job offline; its .wandb file read back (by wandb's own reader) holds what was logged.

W&B is never required: a W&B that cannot start leaves the job ok. No W&B server is reachable here,
so the dashboard is checked as a spec (it builds, and reads only keys the trainer logs) and
`pmexp.sync` as the command it would run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHRINK, TINY_BERT

import pmexp.experiment.metrics
from pmexp.experiment.job import train
from pmexp.experiment.records import RECORD_FILE, STEPS_FILE, SUMMARY_KEYS
from pmexp.experiment.wandb_keys import (
    EVAL_KEYS,
    GRAD_LAYER,
    NAMESPACES,
    REPORT_VERDICTS,
    STEP,
    STEP_KEYS,
)
from pmexp.experiment.wandb_keys import (
    SUMMARY_KEYS as WANDB_SUMMARY_KEYS,
)
from pmexp.experiment.wandb_logger import RUN_FILE, WandbUnavailableWarning, group_name

SECRET = "0123456789abcdef0123456789abcdef01234567"  # the shape of a W&B API key
WANDB_CLI = shutil.which("wandb", path=str(Path(sys.executable).parent)) or shutil.which("wandb")


@pytest.fixture(autouse=True)
def wandb_files_in_tmp(tmp_path, monkeypatch):
    """Artifact staging and W&B's cache under the test's tmp dir, not the home directory."""
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")


def leet(*args: str) -> str:
    """wandb's own reader of .wandb transaction logs (`wandb leet inspect`), as text."""
    if WANDB_CLI is None:
        pytest.skip("the wandb command line is not installed")
    run = subprocess.run([WANDB_CLI, "leet", "inspect", *args], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    return run.stdout


def read_offline_run(run_dir: Path, timeout_s: float = 30.0) -> tuple[dict, list[dict]]:
    """(summary object, every record) of one offline run, read by wandb itself.

    W&B writes the file from a separate process: wait until it has recorded the run's exit.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        summary = json.loads(leet("--summary", "--json", str(run_dir)))
        if summary["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    records = [json.loads(line) for line in leet("--json", str(run_dir)).splitlines() if line.strip()]
    return summary, records


def offline_run(job_dir: Path) -> tuple[dict, list[dict], list[dict]]:
    """(summary object, history items, every record) of the job's one offline run."""
    (run_dir,) = (job_dir / "wandb").glob("offline-run-*")
    summary, records = read_offline_run(run_dir)
    return summary, [r["history"]["item"] for r in records if r.get("type") == "history"], records


def run_record(records: list[dict]) -> dict:
    """The `run` record: group, job_type, project ... as W&B will show them."""
    return next(r["run"] for r in records if r.get("type") == "run")


def artifact_files(records: list[dict]) -> dict[str, list[str]]:
    """Artifact type -> the file names in its manifest."""
    return {r["artifact"]["type"]: sorted(c["path"] for c in r["artifact"]["manifest"]["contents"])
            for r in records if r.get("type") == "artifact"}


def test_offline_run_holds_namespaced_history_config_summary_and_artifact(make_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    cfg = make_cfg("logger=wandb", "logger.tags=[unit]")
    record = train(cfg)
    assert record["status"] == "ok", record["traceback"]
    job_dir = Path(cfg.job_dir)
    run, history, records = offline_run(job_dir)

    steps = [row for row in history if "train/loss" in row]
    assert [row[STEP] for row in steps] == [row["_step"] for row in steps] == [1, 2]  # x axis: optimizer step
    assert {"train/loss", "train/lr", "grad/norm", "speed/step_time_ms"} <= set(steps[0])
    assert any(k.startswith(GRAD_LAYER) for k in steps[0])
    logged = {k for row in history for k in row if not k.startswith("_")}
    assert all(k.startswith(NAMESPACES) for k in logged), sorted(k for k in logged if not k.startswith(NAMESPACES))
    assert {"eval/f1", "eval/accuracy", "eval/loss", "memory/saved_mask_bytes", "speed/throughput_seq_s",
            "train/loss_final"} <= logged

    summary = run["summary"]  # define_metric: quality keeps max and last, the loss min and last
    assert summary["eval/f1"] == {"max": record["summary"]["eval_f1"], "last": record["summary"]["eval_f1"]}
    assert summary["train/loss"]["last"] == pytest.approx(record["summary"]["train_loss_final"])
    assert (summary["status"], summary.get("error")) == ("ok", None)  # W&B drops a None
    metrics = {r["metric"].get("name") or r["metric"].get("glob_name"): r["metric"] for r in records
               if r.get("type") == "metric"}
    assert metrics["*"]["step_metric"] == STEP
    assert metrics["eval/f1"]["summary"] == {"max": True, "last": True}
    assert metrics["memory/peak_allocated_mb"]["summary"] == {"max": True}

    config = run["config"]
    assert config["model"]["name"] == "tinybert" and config["trainer"]["max_steps"] == 2  # the resolved config
    assert (config["status"], config["config_hash"]) == ("ok", record["config_hash"])
    assert config["env"]["torch"] == record["env"]["torch"]
    assert config["dropout_report"]["variant"] == "standard"
    assert config["probe"]["saved_mask_bytes"] == record["probe"]["saved_mask_bytes"]
    assert config["model_info"]["note"].startswith("random init")  # tiny random BERT on MRPC: said so

    meta = run_record(records)
    assert (meta["job_type"], meta["run_group"]) == ("standard", group_name(record["config"], None))
    assert (run["state"], run["exit_code"], run["name"]) == ("finished", 0, "tinybert-standard-seed0")
    assert set(run["tags"]) >= {"unit", "tinybert", "standard", "fp32", "eager"}
    assert artifact_files(records) == {"job-records": [RECORD_FILE, STEPS_FILE]}
    assert json.loads((job_dir / RUN_FILE).read_text())["group"] == meta["run_group"]
    leaked = [p for p in job_dir.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []


def test_an_oom_job_is_a_finished_run_whose_status_says_oom(make_cfg):
    cfg = make_cfg("logger=wandb", "trainer.fault=oom")
    assert train(cfg)["status"] == "oom"
    run, _, records = offline_run(Path(cfg.job_dir))
    assert (run["state"], run["exit_code"]) == ("finished", 0)
    assert run["config"]["status"] == run["summary"]["status"] == "oom"
    assert "OutOfMemoryError" in run["config"]["error"]
    assert artifact_files(records)["job-records"] == [RECORD_FILE, STEPS_FILE]


def test_failed_job_finishes_its_run_with_a_nonzero_exit_code(make_cfg, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("broken step")

    monkeypatch.setattr(pmexp.experiment.metrics, "grad_norms", broken)
    cfg = make_cfg("logger=wandb")
    assert train(cfg)["status"] == "failed"
    run, _, _ = offline_run(Path(cfg.job_dir))
    assert (run["exit_code"], run["config"]["status"]) == (1, "failed")


def test_wandb_that_cannot_start_warns_and_the_job_goes_on(make_cfg, monkeypatch):
    import wandb

    def no_service(*args, **kwargs):
        raise RuntimeError("wandb service unreachable")

    monkeypatch.setattr(wandb, "init", no_service)
    with pytest.warns(WandbUnavailableWarning, match="service unreachable"):
        record = train(make_cfg("logger=wandb"))
    assert record["status"] == "ok"


def test_groups_differ_in_the_seed_alone():
    base = {"seed": 0, "model": {"name": "m"}, "dropout": {"name": "packed"}, "seq_len": 128}
    assert group_name(base, "multirun/x") == group_name({**base, "seed": 1}, "multirun/x")
    assert group_name(base, "multirun/x") != group_name({**base, "dropout": {"name": "standard"}}, "multirun/x")
    assert group_name(base, "multirun/x").startswith("multirun/x/m-packed-")
    assert len(group_name(base, "s" * 300)) <= 128


# --- the dashboard, as a spec -------------------------------------------------------------------------

def _local_name(key: str) -> str | None:
    """The steps.jsonl / summary name a W&B key mirrors (None: not one the trainer logs)."""
    for mapping in (STEP_KEYS, EVAL_KEYS, WANDB_SUMMARY_KEYS):
        for local, wandb_key in mapping.items():
            if wandb_key == key:
                return local
    return None


def test_dashboard_spec_builds_and_reads_only_keys_the_trainer_logs(make_cfg, monkeypatch):
    import wandb_workspaces.reports.v2.interface as wr_interface

    from pmexp.report.dashboard import build_report, build_workspace, panel_keys, sections

    keys = set().union(*(panel_keys(panels) for _, panels in sections()))
    for key in keys - {REPORT_VERDICTS, f"^{GRAD_LAYER}.*"}:
        local = _local_name(key)
        assert local is not None, f"panel key {key} is not in pmexp.experiment.wandb_keys"
        assert local in (*SUMMARY_KEYS, "step", "loss", "lr", "grad_norm", "step_time_ms", "epoch"), key

    # What a CPU job logs holds every panel key that a CPU measures (peak memory is CUDA's).
    cfg = make_cfg("logger=wandb")
    assert train(cfg)["status"] == "ok"
    _, history, _ = offline_run(Path(cfg.job_dir))
    logged = {k for row in history for k in row}
    cuda_only = {k for k in keys if k.startswith("memory/peak")}
    assert keys - {REPORT_VERDICTS, f"^{GRAD_LAYER}.*"} - cuda_only <= logged
    assert any(k.startswith(GRAD_LAYER) for k in logged)

    # Both specs serialise to what W&B's API takes; the report's runsets look up the project's id,
    # which needs the server: answered here by a stub.
    monkeypatch.setattr(wr_interface, "_get_api", lambda: None)
    monkeypatch.setattr(wr_interface, "execute_graphql", lambda *a, **k: {"project": {"internalId": "P1"}})
    view = build_workspace("pmexp", "team", "multirun/x")._to_model()
    spec = json.dumps(view.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert "'multirun/x'" in str(build_workspace("pmexp", "team", "multirun/x").runset_settings.filters)
    report = json.dumps(build_report("pmexp", "team", "multirun/x")._to_model().model_dump(
        mode="json", by_alias=True, exclude_none=True))
    for key in (STEP, "eval/f1", "memory/saved_mask_bytes", "speed/throughput_seq_s", "grad/norm"):
        assert f'"{key}"' in spec and f'"{key}"' in report
    assert '"groupArea": "stddev"' in report  # a band over the seeds of each group


def test_sync_finds_offline_runs_and_hands_them_to_wandb_sync(make_cfg, monkeypatch, capsys):
    import pmexp.sync

    cfg = make_cfg("logger=wandb")
    train(cfg)
    ran = []
    monkeypatch.setattr(pmexp.sync.subprocess, "run",
                        lambda cmd, check: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    root = Path(cfg.job_dir).parent
    assert pmexp.sync.main([str(root), "--project", "p"]) == 0
    (cmd,) = ran
    (run_dir,) = Path(cfg.job_dir).glob("wandb/offline-run-*")
    assert cmd[-3:] == ["--project", "p", str(run_dir)] and cmd[cmd.index("sync") + 1] == "--yes"
    assert pmexp.sync.main([str(root / "missing")]) == 2


# --- a sweep, end to end ------------------------------------------------------------------------------

@pytest.mark.slow
def test_sweep_runs_group_by_configuration_type_by_variant_and_keep_an_oom_as_a_result(tmp_path, mrpc_dir):
    """Issue 15's acceptance: 2 variants x 2 seeds, W&B offline, plus an injected OOM job and the report run."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PMEXP_MRPC_DIR": str(mrpc_dir)}
    shrink = [o for o in SHRINK if o != "logger=none"]  # W&B is the default logger

    def cli(module: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=Path(__file__).resolve().parents[1],
                              env=env, capture_output=True, text=True, timeout=600)

    run = cli("pmexp.train", "-m", *TINY_BERT, *shrink, "dropout=standard,packed", "seed=0,1",
              f"hydra.sweep.dir={sweep}")
    assert run.returncode == 0, run.stderr[-3000:]
    oom = cli("pmexp.train", "-m", *TINY_BERT, *shrink, "dropout=packed", "seed=2", "trainer.fault=oom",
              f"hydra.sweep.dir={sweep}")
    assert oom.returncode == 1, oom.stderr[-3000:]  # one job not ok: the multirun says so
    report = cli("pmexp.report", str(sweep), "--wandb")
    assert report.returncode == 0, report.stderr[-3000:]

    jobs, report_runs = {}, []
    for run_dir in sorted(sweep.rglob("offline-run-*")):
        summary, records = read_offline_run(run_dir)
        meta = run_record(records)
        if meta["job_type"] == "report":
            report_runs.append((summary, records, meta))
            continue
        config = summary["config"]
        jobs[(config["dropout"]["name"], config["seed"], config["trainer"]["fault"])] = (summary, records, meta)
    assert sorted(jobs) == [("packed", 0, None), ("packed", 1, None), ("packed", 2, "oom"),
                            ("standard", 0, None), ("standard", 1, None)]

    group = {key: meta["run_group"] for key, (_, _, meta) in jobs.items()}
    assert group["standard", 0, None] == group["standard", 1, None]  # seeds of one configuration: one group
    assert group["packed", 0, None] == group["packed", 1, None]
    assert len({group["standard", 0, None], group["packed", 0, None], group["packed", 2, "oom"]}) == 3
    assert all(g.startswith(f"{sweep}/") for g in group.values())
    for (variant, _, fault), (summary, records, meta) in jobs.items():
        assert meta["job_type"] == variant
        assert summary["config"]["sweep"] == str(sweep)
        history = [r["history"]["item"] for r in records if r.get("type") == "history"]
        keys = {k for row in history for k in row if not k.startswith("_")}
        assert keys and all(k.startswith(NAMESPACES) for k in keys)
        assert {"train/loss", "grad/norm", "speed/step_time_ms"} <= keys
        if fault is None:
            assert {"eval/f1", "memory/saved_mask_bytes"} <= keys
        assert artifact_files(records)["job-records"] == [RECORD_FILE, STEPS_FILE]
        expected = "oom" if fault == "oom" else "ok"
        assert (summary["state"], summary["exit_code"]) == ("finished", 0)  # an OOM is a result, not a crash
        assert summary["config"]["status"] == summary["summary"]["status"] == expected

    ((summary, records, meta),) = report_runs  # one report run, grouped under the sweep
    assert meta["run_group"] == str(sweep) and summary["config"]["sweep"] == str(sweep)
    (item,) = [r["history"]["item"] for r in records if r.get("type") == "history"]  # leet flattens nesting
    assert item[f"{REPORT_VERDICTS}._type"] == "table-file"
    assert any(k.startswith("report/plots/") and v == "image-file" for k, v in item.items() if k.endswith("._type"))
    assert "report.html" in artifact_files(records)["report"]
    assert summary["state"] == "finished"
