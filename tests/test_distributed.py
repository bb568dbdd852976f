"""trainer.strategy=ddp|zero1: two gloo processes under torchrun on the CPU, and the error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SHRINK, TINY_BERT

from pmexp.experiment.config import ConfigError, validate
from pmexp.experiment.distributed import LAUNCHER_ENV, DistributedError, setup
from pmexp.experiment.job import train
from pmexp.experiment.records import RECORD_FILE, STEPS_FILE, SUMMARY_KEYS, config_hash, same_config


def torchrun(tmp_path: Path, mrpc_dir: Path, name: str, *overrides: str) -> tuple[Path, dict]:
    """`torchrun --nproc_per_node=2 -m pmexp.train` with the tiny config; returns (job dir, record)."""
    job_dir = tmp_path / name
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "pmexp.train", *TINY_BERT, *SHRINK, f"data.dir={mrpc_dir}", f"job_dir={job_dir}",
           f"hydra.run.dir={tmp_path / 'hydra' / name}/rank${{oc.env:RANK}}", *overrides]
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return job_dir, json.loads((job_dir / RECORD_FILE).read_text())


@pytest.mark.slow
def test_zero1_two_processes_leave_one_record(tmp_path, mrpc_dir):
    job_dir, record = torchrun(tmp_path, mrpc_dir, "zero1", "trainer.strategy=zero1")
    assert record["status"] == "ok", record["traceback"]
    assert list(record["summary"]) == list(SUMMARY_KEYS)
    s = record["summary"]
    assert (s["strategy"], s["world_size"], s["steps"]) == ("zero1", 2, 2)
    assert "peak_allocated_mb_max" in s and "peak_allocated_mb_mean" in s  # null on a CPU
    assert s["eval_loss"] is not None and s["throughput_seq_s"] > 0  # rank 0 evaluated
    assert [p.parent for p in tmp_path.rglob(RECORD_FILE)] == [job_dir]  # one record, rank 0's
    assert len(list(tmp_path.rglob(STEPS_FILE))) == 1
    steps = [json.loads(line) for line in (job_dir / STEPS_FILE).read_text().splitlines()]
    assert [r["step"] for r in steps if "step" in r] == [1, 2]


@pytest.mark.slow
def test_ddp_standard_and_packed_exact_give_identical_losses(tmp_path, mrpc_dir):
    """Same seed, two processes: packed_exact reproduces torch's dropout on every rank, bit for bit."""
    losses = {}
    for option in ("standard", "packed_exact"):
        job_dir, record = torchrun(tmp_path, mrpc_dir, option, "trainer.strategy=ddp", f"dropout={option}",
                                   "trainer.eval=false", "trainer.probe=false")
        assert record["status"] == "ok", record["traceback"]
        assert (record["summary"]["strategy"], record["summary"]["world_size"]) == ("ddp", 2)
        assert {"peak_allocated_mb_max", "peak_allocated_mb_mean"} <= set(record["summary"])
        rows = [json.loads(line) for line in (job_dir / STEPS_FILE).read_text().splitlines()]
        losses[option] = [(r["loss"], r["grad_norm"]) for r in rows if "step" in r]
    assert losses["standard"] == losses["packed_exact"]
    assert len(losses["standard"]) == 2


@pytest.mark.parametrize("strategy", ["ddp", "zero1"])
def test_strategy_without_torchrun_names_torchrun(make_cfg, monkeypatch, strategy):
    for key in LAUNCHER_ENV:
        monkeypatch.delenv(key, raising=False)
    cfg = make_cfg(f"trainer.strategy={strategy}")
    with pytest.raises(DistributedError, match=r"torchrun --nproc_per_node=N -m pmexp.train"):
        train(cfg)
    assert not Path(cfg.job_dir).exists()  # nothing written


def test_more_processes_than_gpus_says_how_many(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(DistributedError, match=r"--nproc_per_node=1 or fewer"):
        setup("ddp", torch.device("cuda", 0))


def test_nccl_on_a_cpu_is_refused(monkeypatch):
    for key, value in zip(LAUNCHER_ENV, ("0", "1", "0", "127.0.0.1", "29500"), strict=True):
        monkeypatch.setenv(key, value)
    with pytest.raises(DistributedError, match=r"NCCL backend needs CUDA"):
        setup("ddp", torch.device("cpu"), backend="nccl")


def test_single_strategy_needs_no_launcher():
    info = setup("single", torch.device("cpu"))
    assert (info.rank, info.world_size, info.multi_process, info.is_rank0) == (0, 1, False, True)


def test_strategy_is_validated_and_a_fixed_gpu_refused(make_cfg):
    with pytest.raises(ConfigError, match=r"trainer.strategy='fsdp'"):
        validate(make_cfg("trainer.strategy=fsdp"))
    with pytest.raises(ConfigError, match=r"cuda:LOCAL_RANK"):
        validate(make_cfg("trainer.strategy=ddp", "trainer.device=cuda:1"))


def test_default_strategy_keeps_the_config_hash_of_older_records(make_cfg):
    """Records written before trainer.strategy existed still match a default job (resume skips them)."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(validate(make_cfg()), resolve=True)
    older = {**config, "trainer": {k: v for k, v in config["trainer"].items() if k != "strategy"}}
    old_record = {"config_hash": config_hash(older, schema=1)}  # schema 1: no `schema` key, hashed the old way
    assert same_config(config, old_record)
    ddp = {**config, "trainer": {**config["trainer"], "strategy": "ddp"}}
    assert not same_config(ddp, old_record)
    assert config_hash(ddp) != config_hash(config)


@pytest.mark.parametrize("finished", [True, False])
def test_teardown_collects_the_job_then_meets_the_other_ranks_only_after_a_finished_job(monkeypatch, finished):
    """The job's cycles (an FSDP2 model) go while the group lives; a failed job skips the barrier (no hang)."""
    from pmexp.experiment import distributed

    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.gc, "collect", lambda: calls.append("collect"))
    monkeypatch.setattr(distributed.dist, "barrier", lambda device_ids=None: calls.append(("barrier", device_ids)))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    info = distributed.DistInfo("zero2", 1, 2, 1, torch.device("cpu"), "gloo")
    distributed.teardown(info, finished=finished)
    assert calls == (["collect", ("barrier", None), "destroy"] if finished else ["collect", "destroy"])
    calls.clear()
    distributed.teardown(distributed.DistInfo(), finished=finished)  # single process: nothing to leave
    assert calls == []
