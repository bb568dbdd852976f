"""W&B mirrors a job offline; its .wandb file read back holds what was logged. W&B is never required."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pmexp.metrics
from pmexp.train import train
from pmexp.wandb_logger import WandbUnavailableWarning

SECRET = "0123456789abcdef0123456789abcdef01234567"  # the shape of a W&B API key
WANDB_CLI = shutil.which("wandb", path=str(Path(sys.executable).parent)) or shutil.which("wandb")


def leet(*args: str) -> str:
    """wandb's own reader of .wandb transaction logs (`wandb leet inspect`), as text."""
    if WANDB_CLI is None:
        pytest.skip("the wandb command line is not installed")
    run = subprocess.run([WANDB_CLI, "leet", "inspect", *args], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    return run.stdout


def offline_run(job_dir: Path, timeout_s: float = 30.0) -> tuple[dict, list[dict]]:
    """(summary object, history items) of the job's offline run, read by wandb itself.

    W&B writes the file from a separate process: wait until it has recorded the run's exit.
    """
    (run_dir,) = (job_dir / "wandb").glob("offline-run-*")
    deadline = time.monotonic() + timeout_s
    while True:
        summary = json.loads(leet("--summary", "--json", str(run_dir)))
        if summary["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    records = [json.loads(line) for line in leet("--json", str(run_dir)).splitlines() if line.strip()]
    return summary, [r["history"]["item"] for r in records if r.get("type") == "history"]


def test_offline_run_holds_config_history_and_summary(make_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    cfg = make_cfg("logger=wandb", "logger.tags=[unit]")
    record = train(cfg)
    assert record["status"] == "ok", record["traceback"]
    job_dir = Path(cfg.job_dir)
    run, history = offline_run(job_dir)
    steps = [row for row in history if "loss" in row]
    assert [row["step"] for row in steps] == [1, 2]
    assert {"loss", "lr", "grad_norm", "step_time_ms"} <= set(steps[0])
    assert any(k.startswith("grad_norm/") for k in steps[0])
    assert any("eval_f1" in row for row in history)
    assert run["summary"]["train_loss_final"] == pytest.approx(record["summary"]["train_loss_final"])
    assert run["summary"]["variant"] == "standard"
    assert run["config"]["model"]["name"] == "tinybert"  # the resolved config
    assert run["config"]["trainer"]["max_steps"] == 2
    assert (run["state"], run["exit_code"], run["name"]) == ("finished", 0, "tinybert-standard-seed0")
    assert set(run["tags"]) >= {"unit", "tinybert", "standard", "fp32", "eager"}
    leaked = [p for p in job_dir.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []


def test_failed_job_finishes_its_run_with_a_nonzero_exit_code(make_cfg, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("broken step")

    monkeypatch.setattr(pmexp.metrics, "grad_norms", broken)
    cfg = make_cfg("logger=wandb")
    assert train(cfg)["status"] == "failed"
    run, _ = offline_run(Path(cfg.job_dir))
    assert run["exit_code"] == 1


def test_wandb_that_cannot_start_warns_and_the_job_goes_on(make_cfg, monkeypatch):
    import wandb

    def no_service(*args, **kwargs):
        raise RuntimeError("wandb service unreachable")

    monkeypatch.setattr(wandb, "init", no_service)
    with pytest.warns(WandbUnavailableWarning, match="service unreachable"):
        record = train(make_cfg("logger=wandb"))
    assert record["status"] == "ok"
