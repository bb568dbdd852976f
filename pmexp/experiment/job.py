"""One job: validate, start the processes, lock the job dir, skip or run the loop, and record how it ended.

    python -m pmexp.train trainer.max_steps=2 logger=none          # train(cfg) through the Hydra entry point
    python -c "from pmexp.experiment.job import train"             # what tests and pmexp.maxbatch call

`train(cfg)` does the work and returns the job record. Every job writes `metrics.json` (status ok /
oom / diverged / failed / killed) and `steps.jsonl` into its job dir (see pmexp.experiment.records,
written by pmexp.experiment.recorder). An out-of-memory or failed job is recorded and a multirun goes
on; SIGTERM or SIGINT records `killed` and exits (pmexp.experiment.app lets a job in a joblib/submitit
launcher's process return instead, so its sweep goes on). A job dir whose record says ok for the same
config is skipped. With `trainer.strategy` other than single (under torchrun, see
pmexp.experiment.distributed) rank 0 picks the one job dir and alone writes the records and the W&B run.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from pmexp.experiment import loop, metrics
from pmexp.experiment.callbacks import hydra_runtime
from pmexp.experiment.config import validate
from pmexp.experiment.distributed import DistInfo, broadcast_object, gather_peak_memory, setup, teardown
from pmexp.experiment.errors import ConfigError
from pmexp.experiment.faults import Diverged, JobKilled, signals_raise_killed
from pmexp.experiment.joblock import JobLock, note_skip, recover_dead_record
from pmexp.experiment.recorder import Recorder
from pmexp.experiment.records import config_hash, read_record, same_config

__all__ = ["Diverged", "JobKilled", "train"]

log = logging.getLogger(__name__)


def _job_dir(cfg: DictConfig) -> Path:
    if cfg.job_dir is not None:
        return Path(cfg.job_dir)
    runtime = hydra_runtime()
    if runtime is None:
        raise ConfigError("job_dir is null and no Hydra run is active: pass job_dir=<folder for the records>")
    return Path(runtime.runtime.output_dir)


def _device(name: str) -> torch.device:
    """The run's device, with an index on CUDA (per-device calls such as the memory cap need one)."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job and write its record; return the record (status, summary, config ...).

    Args:
        cfg: the composed config (`@hydra.main` or `hydra.compose`); validated here first.

    Returns:
        The job record as written to `<job_dir>/metrics.json`; for a skipped job, the old record.

    Raises:
        ConfigError: the config is invalid (nothing is run or written).
        DistributedError: trainer.strategy=ddp/zero1 cannot start (not under torchrun, too few GPUs).
        SystemExit: SIGTERM/SIGINT arrived; the `killed` record was written first.
    """
    started = time.perf_counter()
    cfg = validate(cfg)
    info = setup(cfg.trainer.strategy, _device(cfg.trainer.device))
    record: dict[str, Any] = {}
    try:
        record = _locked(cfg, info, started)
        return record
    finally:
        teardown(info, finished=record.get("status") == "ok")  # oom, failed ...: a rank may be elsewhere


def _locked(cfg: DictConfig, info: DistInfo, started: float) -> dict[str, Any]:
    """`train` once the process group (if any) is up: only rank 0 reads and writes the job dir."""
    job_dir = Path(broadcast_object(info, str(_job_dir(cfg))))  # every rank: rank 0's job dir
    lock = JobLock(job_dir) if info.is_rank0 else None
    if not broadcast_object(info, lock.acquire() if lock else None):
        if info.is_rank0:
            note_skip(job_dir, f"another process holds {lock.path} (that job is still running)")
        return {"status": "locked", "error": f"job dir {job_dir} is locked by another running job"}
    try:
        if info.is_rank0:
            recover_dead_record(job_dir)
        return _run(cfg, info, started, job_dir)
    finally:
        if lock is not None:
            lock.release()


def _run(cfg: DictConfig, info: DistInfo, started: float, job_dir: Path) -> dict[str, Any]:
    """`_locked` with the job dir locked: skip a job its record says is done, else run and record it."""
    config = OmegaConf.to_container(cfg, resolve=True)
    previous = read_record(job_dir) if info.is_rank0 else None
    skip = bool(previous and previous.get("status") == "ok" and same_config(config, previous) and not cfg.force)
    skip, previous = broadcast_object(info, (skip, previous))
    if skip:
        log.info("skipping %s: its record says ok for config_hash %s (force=true re-runs it)",
                 job_dir, previous.get("config_hash"))
        return previous
    recorder = Recorder(cfg, info, job_dir, config, config_hash(config), started)
    try:
        killed = _outcome(cfg, info, recorder)
    finally:
        recorder.close()  # steps file, then W&B: status (ok, oom, diverged ...), reports, records artifact
    if info.device.type == "cuda":  # the failed job's tensors are unreachable now: give their memory back
        gc.collect()
        torch.cuda.empty_cache()
        if cfg.trainer.memory_cap_gb is not None:  # the cap is per process: lift it for the next job
            torch.cuda.set_per_process_memory_fraction(1.0, info.device)
    if killed is not None:
        raise SystemExit(128 + killed.signum)
    return recorder.record


def _outcome(cfg: DictConfig, info: DistInfo, recorder: Recorder) -> JobKilled | None:
    """Run the loop and record how it ended; a kill is returned, so the caller exits after cleaning up."""
    summary = recorder.summary
    with signals_raise_killed():
        try:
            loop.run(cfg, info, recorder)  # records the peak memory itself, before its last probe
            summary.update(gather_peak_memory(info, summary["peak_allocated_mb"]))
            recorder.finish("ok")
        except torch.OutOfMemoryError as e:
            summary.update(metrics.peak_memory(info.device))  # the memory reached before it gave out
            if not info.multi_process:  # no collective here: the other ranks may be elsewhere
                summary.update(gather_peak_memory(info, summary["peak_allocated_mb"]))
            recorder.finish("oom", error=f"OutOfMemoryError: {e}")
        except Diverged as e:
            recorder.finish("diverged", error=f"Diverged: {e}", diverged_step=e.step)
        except JobKilled as e:
            recorder.finish("killed", error=str(e))
            return e
        except Exception as e:  # recorded, not raised: the other jobs of a multirun go on
            recorder.finish("failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    return None
