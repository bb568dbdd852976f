"""The one owner of a job's record: from `running` to its final status, and every row on its way.

    python -m pmexp.train trainer.max_steps=2 logger=none    # outputs/<date>/<time>/{metrics.json,steps.jsonl}

A `Recorder` writes `metrics.json` (pmexp.experiment.records) when the job starts (status `running`)
and when it ends (ok, oom, diverged, failed, killed), and sends each optimizer step's and each
evaluation's row to all three places a job reports to: `steps.jsonl`, the log, and W&B
(`WandbLogger`, namespaced by `pmexp.experiment.wandb_keys`). A metric added to a row therefore
reaches every one of them. Only rank 0 of a multi-process job writes files or a W&B run; the other
ranks' recorders keep the record in memory (their summary feeds the gathered numbers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from pmexp.dropout.traced import use_traced
from pmexp.experiment.callbacks import hydra_runtime
from pmexp.experiment.compiling import job_inductor_options
from pmexp.experiment.config import config_warnings
from pmexp.experiment.distributed import DistInfo
from pmexp.experiment.metrics import StepTimer
from pmexp.experiment.records import SCHEMA_VERSION, SUMMARY_KEYS, StepLog, env_info, write_record
from pmexp.experiment.tasks import task_of
from pmexp.experiment.wandb_logger import WandbLogger

__all__ = ["Recorder", "config_summary"]

log = logging.getLogger(__name__)


def config_summary(cfg: DictConfig) -> dict[str, Any]:
    """The summary keys known before any work; the rest start as null."""
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    surgery = cfg.dropout.variant is not None
    summary.update(
        model=cfg.model.name, variant=cfg.dropout.name, precision=cfg.precision.name,
        seq_len=cfg.seq_len if task_of(cfg).uses_seq_len else None,
        attention=cfg.attention, batch_size=cfg.trainer.batch_size, seed=cfg.seed,
        compile=cfg.trainer.compile, checkpointing=cfg.trainer.checkpointing, memory=cfg.memory.name,
        targets=list(cfg.dropout.targets) if surgery else None, steps=0, strategy=cfg.trainer.strategy,
        fuse=cfg.dropout.fuse if surgery else None,
    )
    if cfg.trainer.compile:
        options = job_inductor_options(cfg)
        summary.update(compiled_dropout="traced" if use_traced() else "custom_op",
                       compile_backend=cfg.trainer.compile_backend,
                       inductor_options=",".join(f"{k}={v}" for k, v in options.items()) or None)
    return summary


def _wandb(cfg: DictConfig, info: DistInfo, record: Mapping[str, Any], job_dir: Path) -> WandbLogger:
    """The job's W&B run (rank 0 only): named by its overrides, grouped by sweep and configuration."""
    runtime = hydra_runtime()
    multirun = runtime is not None and runtime.mode == RunMode.MULTIRUN
    name = (runtime.job.override_dirname if runtime else "") or f"{cfg.model.name}-{cfg.dropout.name}-seed{cfg.seed}"
    tags = [cfg.model.name, cfg.dropout.name, cfg.precision.name, cfg.attention]
    choices = runtime.runtime.choices if runtime else {}
    if choices.get("experiment"):
        tags.append(choices["experiment"])
    logger_cfg = cfg.logger if info.is_rank0 else OmegaConf.create({"name": "none", "mode": "disabled"})
    return WandbLogger(logger_cfg, record["config"], job_dir, name, str(runtime.sweep.dir) if multirun else None,
                       tags, extra_config={"config_hash": record["config_hash"], "env": record["env"]})


class Recorder:
    """A job's record and the three places its rows go (steps.jsonl, log, W&B); see the module docstring.

    Args:
        cfg: the validated config.
        info: this process's place in the job (rank 0 alone writes).
        job_dir: where the record, the steps file and the W&B run go.
        config: the resolved config as a plain dict (stored in the record).
        chash: its `config_hash`.
        started: the job's `time.perf_counter()` at its start, for the record's wall time.
    """

    def __init__(self, cfg: DictConfig, info: DistInfo, job_dir: Path, config: dict[str, Any], chash: str,
                 started: float) -> None:
        self.cfg, self.job_dir, self.writes, self.started = cfg, job_dir, info.is_rank0, started
        runtime = hydra_runtime()
        self.record: dict[str, Any] = {
            "schema": SCHEMA_VERSION, "status": "running", "error": None, "traceback": None, "config": config,
            "config_hash": chash, "overrides": list(runtime.overrides.task) if runtime else [],
            "env": env_info(info.device), "summary": config_summary(cfg), "dropout_report": None,
            "memory_report": None, "model_info": None, "probe": None,
        }
        self.summary["world_size"] = info.world_size
        self.record["warnings"] = config_warnings(cfg, info.device)
        for warning in self.record["warnings"]:
            log.warning(warning)
        self._write()
        self.wandb = _wandb(cfg, info, self.record, job_dir)
        self.steps = StepLog(job_dir) if self.writes else None
        self.progress: Any = None
        self.total_steps = 0

    @property
    def summary(self) -> dict[str, Any]:
        return self.record["summary"]

    def _write(self) -> None:
        if self.writes:
            write_record(self.job_dir, self.record)

    def _row(self, row: Mapping[str, Any], step: int) -> None:
        if self.steps is not None:
            self.steps.write(row)
        self.wandb.log(row, step)

    def note(self, **parts: Any) -> None:
        """Set top-level parts of the record (model_info, dropout_report, memory_report, probe)."""
        self.record.update(parts)

    def begin(self, total_steps: int, epochs: int, steps_per_epoch: int, device: Any) -> None:
        """Training starts: the log line and the progress bar."""
        t = self.cfg.trainer
        self.total_steps = total_steps
        log.info("training %d steps (%d epoch(s) of %d), batch %d x %d accumulated, on %s",
                 total_steps, epochs, steps_per_epoch, t.batch_size, t.grad_accum, device)
        self.progress = tqdm(total=total_steps, desc=f"{self.cfg.model.name}/{self.cfg.dropout.name}", disable=None)

    def step(self, row: dict[str, Any]) -> None:
        """An optimizer step's row: to steps.jsonl and W&B, and into the summary (before any check on it)."""
        self._row(row, row["step"])
        self.summary.update(steps=row["step"], train_loss_final=row["loss"], grad_norm_final=row["grad_norm"])

    def step_done(self, row: Mapping[str, Any], timer: StepTimer) -> None:
        """After the step's checks: the progress bar, and every `log_every` steps the log line and timings."""
        step = row["step"]
        self.progress.update(1)
        if step % self.cfg.trainer.log_every == 0 or step == self.total_steps:
            self.summary.update(timer.summary())
            self.progress.set_postfix(loss=f"{row['loss']:.4f}")
            log.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f %.0f ms",
                     step, self.total_steps, row["loss"], row["lr"], row["grad_norm"], row["step_time_ms"])

    def evaluation(self, epoch: int, result: dict[str, Any], step: int) -> None:
        """An evaluation's row (after epoch `epoch`, at optimizer step `step`): steps.jsonl, W&B, summary, log."""
        if self.steps is not None:
            self.steps.write({"epoch": epoch, **result})
        self.wandb.log(result, step)
        self.summary.update(result)
        log.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in result.items() if v is not None))

    def end_training(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def finish(self, status: str, **fields: Any) -> dict[str, Any]:
        """The final status (with error, traceback ... in `fields`) and the wall time, written; returns the record."""
        self.end_training()
        self.record.update(status=status, **fields)
        self.summary["wall_time_s"] = time.perf_counter() - self.started
        self._write()
        return self.record

    def close(self) -> None:
        """Close the steps file and mirror the job's end to W&B (status, reports, records artifact)."""
        if self.steps is not None:
            self.steps.close()
        self.wandb.finish_job(self.record, self.job_dir)
        status, error = self.record["status"], self.record["error"]
        level = logging.INFO if status == "ok" else logging.ERROR
        log.log(level, "job %s: %s%s", status, self.job_dir, f" ({error})" if error else "")
