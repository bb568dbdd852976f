"""Weights & Biases for one job: offline by default, never required, always finished.

The job dir's metrics.json and steps.jsonl are the records of truth; W&B mirrors them. If W&B cannot
start (not installed, no login for online mode, a broken service), a `WandbUnavailableWarning` is
issued and the job goes on. Nothing here reads or writes API keys: `wandb login` keeps them.

An offline run can be looked at with `wandb leet <job_dir>/wandb` (a terminal UI), read as JSON with
`wandb leet inspect --summary --json <run folder>`, and uploaded later with `wandb sync`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

__all__ = ["WandbLogger", "WandbUnavailableWarning"]

log = logging.getLogger(__name__)


class WandbUnavailableWarning(UserWarning):
    """W&B could not start or failed mid-run; the job continues with its local records."""


class WandbLogger:
    """Mirror a job to W&B: config at start, per-step rows, summary, and `finish` with an exit code.

    Args:
        logger_cfg: the `logger` config group (name none/wandb, project, entity, mode, group, tags).
        config: the resolved config (plain dict) to store as the run's config.
        job_dir: the run's files go to `<job_dir>/wandb`.
        name: the run name (the job's overrides).
        group: the W&B group (the sweep dir for multiruns), unless `logger.group` is set.
        tags: tags added to `logger.tags`.
    """

    def __init__(self, logger_cfg: DictConfig, config: Mapping[str, Any], job_dir: Path, name: str,
                 group: str | None, tags: Sequence[str]) -> None:
        self.run: Any = None
        if logger_cfg.name != "wandb" or logger_cfg.mode == "disabled":
            return
        try:
            import wandb

            self.run = wandb.init(
                project=logger_cfg.project, entity=logger_cfg.entity, mode=logger_cfg.mode,
                dir=str(job_dir), config=dict(config), name=name, group=logger_cfg.group or group,
                tags=sorted(set(tags) | set(logger_cfg.tags)), reinit="create_new",
                settings=wandb.Settings(silent=True, console="off"),
            )
            log.info("W&B run %s (%s) in %s", self.run.id, logger_cfg.mode, self.run.dir)
        except Exception as e:  # W&B must never stop a job: any failure falls back to local records
            warnings.warn(f"W&B could not start ({type(e).__name__}: {e}); "
                          f"continuing with the local records in {job_dir}", WandbUnavailableWarning, stacklevel=2)
            self.run = None

    def _call(self, what: str, fn: Any) -> None:
        if self.run is None:
            return
        try:
            fn()
        except Exception as e:  # a W&B hiccup mid-run: stop mirroring, keep training
            warnings.warn(f"W&B {what} failed ({type(e).__name__}: {e}); no more W&B logging for this job",
                          WandbUnavailableWarning, stacklevel=2)
            self.run = None

    def log(self, row: Mapping[str, Any], step: int) -> None:
        self._call("log", lambda: self.run.log(dict(row), step=step))

    def summary(self, values: Mapping[str, Any]) -> None:
        self._call("summary", lambda: self.run.summary.update({k: v for k, v in values.items() if v is not None}))

    def finish(self, exit_code: int) -> None:
        """Close the run; a non-zero `exit_code` marks it failed in W&B."""
        self._call("finish", lambda: self.run.finish(exit_code=exit_code))
        self.run = None
