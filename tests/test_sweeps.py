"""`python -m pmexp.train -m` end to end, as a user runs it: injected faults, exit codes, resume,
the report, and the joblib / submitit launchers. Subprocesses, so each costs a Python start-up with
torch and transformers (~15 s on 2 cores): every test here is marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHRINK, TINY_BERT
from omegaconf import OmegaConf

from pmexp.experiment.callbacks import job_dirname
from pmexp.experiment.records import RECORD_FILE, STEPS_FILE

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KILLED_EXIT = 128 + signal.SIGTERM
FAULT_SWEEP = ["dropout=standard,packed", "trainer.fault=null,oom"]  # 2 ok + 2 oom jobs
OOM_ERROR = "OutOfMemoryError: injected by trainer.fault=oom"
LAUNCHERS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher",
                       ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                        "hydra.launcher.cpus_per_task=1"]),
}


def run_module(module: str, *args: str, mrpc_dir: Path) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repository root, reading the test's fake MRPC."""
    env = {**os.environ, "PMEXP_MRPC_DIR": str(mrpc_dir)}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def train_cli(*overrides: str, mrpc_dir: Path) -> subprocess.CompletedProcess:
    """A multirun of the tiny CPU model, 2 steps per job (conftest's shrink)."""
    return run_module("pmexp.train", "-m", *TINY_BERT, *SHRINK, *overrides, mrpc_dir=mrpc_dir)


def records(sweep: Path) -> dict[tuple[str, str | None], tuple[Path, dict]]:
    """(dropout, trainer.fault) -> (job dir, record) for every job under `sweep`."""
    found = {}
    for path in sweep.rglob(RECORD_FILE):
        record = json.loads(path.read_text())
        config = record["config"]
        found[(config["dropout"]["name"], config["trainer"]["fault"])] = (path.parent, record)
    return found


def step_numbers(job_dir: Path, steps_file: str = STEPS_FILE) -> list[int]:
    lines = (job_dir / steps_file).read_text().splitlines()
    return [row["step"] for row in map(json.loads, lines) if "step" in row]


def failure_text(run: subprocess.CompletedProcess) -> str:
    return f"exit {run.returncode}\n--- stdout\n{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-3000:]}"


@pytest.mark.slow
def test_fault_sweep_records_counts_resumes_and_reports(tmp_path, mrpc_dir):
    """Issue 4's acceptance: OOM and killed jobs are recorded, counted, resumed and reported."""
    faults, killed = tmp_path / "sweeps" / "faults", tmp_path / "sweeps" / "killed"
    sweep_args = [*FAULT_SWEEP, f"hydra.sweep.dir={faults}"]

    # A 2x2 sweep: the OOM jobs are recorded with their config and error, and the sweep goes on.
    run = train_cli(*sweep_args, mrpc_dir=mrpc_dir)
    assert run.returncode == 1, failure_text(run)  # some job not ok (2 is a usage error)
    jobs = records(faults)
    assert {key: r["status"] for key, (_, r) in jobs.items()} == {
        ("standard", None): "ok", ("packed", None): "ok", ("standard", "oom"): "oom", ("packed", "oom"): "oom"}
    for (dropout, fault), (job_dir, record) in jobs.items():
        assert job_dir.parent == faults and f"dropout={dropout}" in job_dir.name
        assert record["summary"]["variant"] == dropout
        if fault == "oom":
            assert (record["error"], record["traceback"]) == (OOM_ERROR, None)
            assert "trainer.fault=oom" in record["overrides"]
            assert record["summary"]["steps"] == 1 and step_numbers(job_dir) == [1]
        else:
            assert record["summary"]["steps"] == 2 and record["summary"]["eval_f1"] is not None

    # A killed job beside it: its record says so, the step it logged stays, the process exits 143.
    kill = train_cli("dropout=packed", "trainer.fault=sigterm", f"hydra.sweep.dir={killed}", mrpc_dir=mrpc_dir)
    assert kill.returncode == KILLED_EXIT, failure_text(kill)
    ((killed_dir, killed_record),) = records(killed).values()
    assert killed_record["status"] == "killed" and killed_record["error"] == "killed by SIGTERM"
    assert killed_record["summary"]["steps"] == 1 and step_numbers(killed_dir) == [1]

    # The same command again resumes: ok jobs are skipped, the OOM jobs run (and fail) again.
    stamps = {key: (d / RECORD_FILE).stat().st_mtime_ns for key, (d, _) in jobs.items()}
    again = train_cli(*sweep_args, mrpc_dir=mrpc_dir)
    assert again.returncode == 1, failure_text(again)
    for key, (job_dir, _) in jobs.items():
        rerun = (job_dir / RECORD_FILE).stat().st_mtime_ns != stamps[key]
        assert rerun == (key[1] == "oom"), key
        assert (job_dir / "steps.attempt1.jsonl").exists() == rerun
    assert {r["status"] for _, r in records(faults).values()} == {"ok", "oom"}

    # The report over both sweep dirs shows the OOM and killed jobs, the verdicts, and plots.
    report = run_module("pmexp.report", str(faults), str(killed), mrpc_dir=mrpc_dir)
    assert report.returncode == 0, failure_text(report)
    md = (faults / "report.md").read_text()
    assert "| OOM | 2 |" in md and "| killed | 1 |" in md and "| ok | 2 |" in md
    assert "killed by SIGTERM" in md  # the table of jobs that did not finish
    assert "## Verdicts" in md and "| criterion | variant | verdict | measured |" in md
    plots = sorted(faults.glob("*.png"))
    assert plots and all(p.read_bytes().startswith(PNG_SIGNATURE) for p in plots)
    assert all(f"]({p.name})" in md for p in plots)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_launcher_runs_jobs_into_the_usual_job_dirs_and_the_exit_code_counts(tmp_path, mrpc_dir, launcher):
    """Jobs in a launcher's own processes: records where the basic launcher puts them, and the
    callback in the sweep's process still counts them (a killed job no longer stops the sweep)."""
    plugin, overrides = LAUNCHERS[launcher]
    pytest.importorskip(plugin, reason="the launchers come with the `sweep` extra: make install")
    sweep = tmp_path / "sweep"
    run = train_cli("trainer.fault=null,sigterm", "trainer.eval=false", "trainer.probe=false", *overrides,
                    f"hydra.sweep.dir={sweep}", mrpc_dir=mrpc_dir)
    assert run.returncode == 1, failure_text(run)  # one job not ok: the killed one
    jobs = records(sweep)
    assert {fault: r["status"] for (_, fault), (_, r) in jobs.items()} == {None: "ok", "sigterm": "killed"}
    for job_dir, _ in jobs.values():
        hydra_cfg = OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra
        assert job_dir.parent == sweep and job_dir.name == job_dirname(hydra_cfg.job.override_dirname)
        assert hydra_cfg.runtime.choices["hydra/launcher"] == launcher
    assert step_numbers(jobs["standard", "sigterm"][0]) == [1]
    assert step_numbers(jobs["standard", None][0]) == [1, 2]


@pytest.mark.slow
def test_submitit_task_per_rank_runs_one_ddp_job(tmp_path, mrpc_dir):
    """A sweep whose every job is a 2-process DDP job, as on Slurm (submitit_slurm with
    tasks_per_node=N): here submitit_local's two tasks take the ranks from submitit's environment."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    run = train_cli("dropout=standard,packed_exact", "trainer.strategy=ddp", "trainer.device=cpu",
                    *LAUNCHERS["submitit_local"][1], "hydra.launcher.tasks_per_node=2",
                    f"hydra.sweep.dir={sweep}", mrpc_dir=mrpc_dir)
    assert run.returncode == 0, failure_text(run)
    found = records(sweep)
    assert set(found) == {("standard", None), ("packed_exact", None)}
    for job_dir, record in found.values():
        assert record["status"] == "ok", record["traceback"]
        assert (record["summary"]["strategy"], record["summary"]["world_size"]) == ("ddp", 2)
        assert step_numbers(job_dir) == [1, 2]
    losses = [[r["loss"] for r in map(json.loads, (d / STEPS_FILE).read_text().splitlines()) if "loss" in r]
              for d, _ in (found[("standard", None)], found[("packed_exact", None)])]
    assert losses[0] == losses[1]  # packed_exact is bit-identical to standard on every rank
