"""The Hydra application behind `python -m pmexp.train`: the task function, exit codes, invalid records.

    python -m pmexp.train trainer.max_steps=2 logger=none      # pmexp/train.py's @hydra.main calls run_job

`pmexp/train.py` holds only `@hydra.main`; everything it runs lives here, in an importable module.
Why: the joblib and submitit launchers pickle the task function, and a function of `__main__` is
pickled by value together with every global it names. `pmexp/train.py`'s `main` names one global,
`run_job`, which lives in an importable module and is pickled by reference; so the framework's
imports stay at the top of their files (nothing of theirs travels by value).

Exit codes of the command: 0 every job ok, 1 a job not ok (a single run's status, or a multirun's
records counted by `JobStatusCallback`), 2 a usage error (an invalid config, an override Hydra cannot
parse, a multi-process job that cannot start).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pmexp.experiment.callbacks import EXIT_STATE, hydra_runtime
from pmexp.experiment.distributed import DistributedError
from pmexp.experiment.errors import ConfigError
from pmexp.experiment.job import train
from pmexp.experiment.records import SCHEMA_VERSION, write_record

__all__ = ["BASIC_LAUNCHER", "cli", "run_job"]

log = logging.getLogger(__name__)
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # runs jobs in the sweep's process


def _record_invalid(cfg: DictConfig, runtime: Any, error: ConfigError) -> None:
    """Write an `invalid` record for a multirun job whose config failed validation (nothing else ran)."""
    job_dir = Path(OmegaConf.select(cfg, "job_dir", default=None) or runtime.runtime.output_dir)
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation may be what is invalid
        config = OmegaConf.to_container(cfg, resolve=False)
    config.pop("hydra", None)
    write_record(job_dir, {"schema": SCHEMA_VERSION, "status": "invalid", "error": f"ConfigError: {error}",
                           "traceback": None, "config": config, "config_hash": None,
                           "overrides": list(runtime.overrides.task), "summary": {"steps": 0}})
    log.error("job invalid: %s (%s)", job_dir, error)


def _in_launcher_process(runtime: Any) -> bool:
    """Whether this job runs in a process of a launcher's own (joblib, submitit), not the sweep's.

    Why it matters: such a launcher hands each job's result back to the sweep's process. A job that
    exits instead (a killed one) makes that process fail with submitit's UncompletedJobError, or
    with joblib stop the whole sweep, before pmexp's callback can count the records.
    """
    if runtime is None or runtime.mode != RunMode.MULTIRUN:
        return False
    return OmegaConf.select(runtime, "launcher._target_", default=BASIC_LAUNCHER) != BASIC_LAUNCHER


def run_job(cfg: DictConfig) -> None:
    """Hydra's task function: one job, or one job of a multirun (`-m`); exits as the module says."""
    runtime = hydra_runtime()
    try:
        record = train(cfg)
    except ConfigError as e:  # the message says what to change; a traceback would only bury it
        print(f"pmexp: invalid config: {e}", file=sys.stderr)
        if runtime is not None and runtime.mode == RunMode.MULTIRUN:
            _record_invalid(cfg, runtime, e)  # one bad job of a sweep: recorded, and the sweep goes on
            return
        sys.exit(2)
    except DistributedError as e:  # not under torchrun, too few GPUs: the message says what to run
        print(f"pmexp: {e}", file=sys.stderr)
        sys.exit(2)
    except SystemExit:  # killed: the record says so already
        if not _in_launcher_process(runtime):
            raise  # in the sweep's own process: the whole sweep stops, as a signal to it means
        return  # a launcher's job: the sweep goes on, and its exit code counts this job
    if record["status"] != "ok" and runtime is not None and runtime.mode == RunMode.RUN:
        EXIT_STATE["job_not_ok"] = True
        sys.exit(1)  # a single run reports failure by its exit code; a multirun's callback counts


def cli(main: Callable[[], Any]) -> None:
    """Run the `@hydra.main` function `main`: exit 0 all ok, 1 a job not ok, 2 a usage error.

    Hydra exits 1 on an override it cannot parse or compose; that is a usage error, so it becomes 2
    unless pmexp itself chose 1 (a job not ok).
    """
    try:
        main()
    except SystemExit as e:
        if e.code == 1 and not EXIT_STATE["job_not_ok"]:
            raise SystemExit(2) from None
        raise
