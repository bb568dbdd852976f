"""Weights & Biases for one job: on by default (offline), never required, always finished.

    python -m pmexp.train                                  # offline run in <job_dir>/wandb
    WANDB_MODE=online python -m pmexp.train -m seed=0,1 dropout=standard,packed   # streams (wandb login)
    python -m pmexp.sync multirun/                         # push offline runs later
    python -m pmexp.train logger=none                      # no W&B at all

The job dir's metrics.json and steps.jsonl are the records of truth; W&B mirrors them. If W&B cannot
start (not installed, no login for online mode, a broken service), a `WandbUnavailableWarning` is
issued and the job goes on. Nothing here reads or writes API keys: `wandb login` keeps them.

What a run carries (key names: `pmexp.experiment.wandb_keys`, the list the dashboard reads too):
- history: each optimizer step and evaluation under train/, eval/, speed/, grad/, grad_layer/; the
  summary's numbers (memory/, speed/ ...) once at the last step; the optimizer step as x axis
  (`define_metric`), eval F1/accuracy summarised as max and last, peak memory as max;
- config: the resolved config, plus status, error, env, config hash, dropout report, probe, sweep;
- group: the sweep and the configuration minus the seed, so W&B's grouping gives mean ± spread over
  seeds; job_type: the dropout option;
- an artifact `records-<run id>` holding metrics.json and steps.jsonl;
- the final status before `finish`: ok and oom (a result of a memory sweep) finish with exit code 0,
  failed and killed with 1.

An offline run can be looked at with `wandb leet <job_dir>/wandb` (a terminal UI) and read as JSON
with `wandb leet inspect --summary --json <run folder>`.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pmexp.experiment.records import RECORD_FILE, STEPS_FILE, config_hash
from pmexp.experiment.wandb_keys import METRIC_SUMMARIES, RUN_CONFIG_KEYS, STEP, final_row_keys, row_keys

__all__ = ["RUN_FILE", "WandbLogger", "WandbUnavailableWarning", "group_name", "read_run_files"]

log = logging.getLogger(__name__)
# Beside metrics.json: where this job's W&B run is (project, group, id ...), for `pmexp.report --wandb`.
RUN_FILE = "wandb_run.json"
EXIT_OK_STATUSES = ("ok", "oom")  # an OOM is a measured result: a finished run, not a failed one
_GROUP_MAX = 128  # W&B's limit on a group name


class WandbUnavailableWarning(UserWarning):
    """W&B could not start or failed mid-run; the job continues with its local records."""


def group_name(config: Mapping[str, Any], sweep: str | None) -> str:
    """The W&B group of a job: its sweep and its configuration minus the seed.

    Readable settings first, then a hash of everything else except the seed, so two jobs share a
    group exactly when they differ in the seed alone, e.g.
    `multirun/fidelity/minilm-packed-fp32-eager-seq128-1f0c2e9a40b1d7c3`.
    """
    get = lambda *keys: _select(config, keys)
    parts = [get("model", "name"), get("dropout", "name"), get("precision", "name"), get("attention"),
             f"seq{get('seq_len')}", config_hash({k: v for k, v in config.items() if k != "seed"})]
    label = "-".join(str(p) for p in parts if p is not None)
    if not sweep:
        return label
    return f"{sweep[: max(0, _GROUP_MAX - len(label) - 1)]}/{label}"


def _select(config: Mapping[str, Any], keys: Sequence[str]) -> Any:
    value: Any = config
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def read_run_files(root: Path) -> list[dict[str, Any]]:
    """Every job's `wandb_run.json` under `root` (what `WandbLogger` wrote), unreadable ones skipped."""
    found = []
    for path in sorted(root.rglob(RUN_FILE)):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


class WandbLogger:
    """Mirror a job to W&B: config at start, per-step rows, and at the end status, artifact and `finish`.

    Args:
        logger_cfg: the `logger` config group (name none/wandb, project, entity, mode, group, tags).
        config: the resolved config (plain dict) to store as the run's config.
        job_dir: the run's files go to `<job_dir>/wandb`.
        name: the run name (the job's overrides).
        sweep: the sweep dir in a multirun, else None; `logger.group` replaces it when set.
        tags: tags added to `logger.tags`.
        extra_config: more config known at the start (config_hash, env).
    """

    def __init__(self, logger_cfg: DictConfig, config: Mapping[str, Any], job_dir: Path, name: str,
                 sweep: str | None, tags: Sequence[str], extra_config: Mapping[str, Any] | None = None) -> None:
        self.run: Any = None
        self.step = 0
        if logger_cfg.name != "wandb" or logger_cfg.mode == "disabled":
            return
        sweep = logger_cfg.group or sweep
        group = group_name(config, sweep)
        job_type = _select(config, ("dropout", "name")) or "job"
        try:
            import wandb  # here, inside the try: logger=none jobs never pay its import, a broken one falls back

            self.run = wandb.init(
                project=logger_cfg.project, entity=logger_cfg.entity, mode=logger_cfg.mode, dir=str(job_dir),
                config={**config, **(extra_config or {}), "sweep": sweep, "status": "running"}, name=name,
                group=group, job_type=job_type, tags=sorted(set(tags) | set(logger_cfg.tags)), reinit="create_new",
                settings=wandb.Settings(silent=True, console="off"),
            )
            self._define_metrics()
            log.info("W&B run %s (%s) in %s, group %s", self.run.id, logger_cfg.mode, self.run.dir, group)
            (job_dir / RUN_FILE).write_text(json.dumps({
                "project": logger_cfg.project, "entity": logger_cfg.entity, "mode": logger_cfg.mode,
                "sweep": sweep, "group": group, "job_type": job_type, "id": self.run.id, "name": name,
                "dir": str(Path(self.run.dir).parent)}, indent=2) + "\n")
        except Exception as e:  # W&B must never stop a job: any failure falls back to local records
            warnings.warn(f"W&B could not start ({type(e).__name__}: {e}); "
                          f"continuing with the local records in {job_dir}", WandbUnavailableWarning, stacklevel=2)
            self.run = None

    def _define_metrics(self) -> None:
        self.run.define_metric(STEP)
        self.run.define_metric("*", step_metric=STEP)
        for key, summary in METRIC_SUMMARIES.items():
            self.run.define_metric(key, step_metric=STEP, summary=summary)

    def _try(self, what: str, fn: Callable[[], Any]) -> bool:
        """Run a W&B call; a failure warns and returns False (the job never sees it)."""
        if self.run is None:
            return False
        try:
            fn()
            return True
        except Exception as e:  # a W&B hiccup: the local records have it all
            warnings.warn(f"W&B {what} failed ({type(e).__name__}: {e})", WandbUnavailableWarning, stacklevel=3)
            return False

    def log(self, row: Mapping[str, Any], step: int) -> None:
        """Log a steps.jsonl row (a step's or an evaluation's) at optimizer step `step`, under W&B names."""
        self.step = max(self.step, step)
        if not self._try("log", lambda: self.run.log({**row_keys(row), STEP: step}, step=step)):
            self.run = None  # stop mirroring, keep training

    def summary(self, values: Mapping[str, Any]) -> None:
        """Put a metrics.json summary's numbers into the run's summary, under W&B names."""
        self._try("summary", lambda: self.run.summary.update(final_row_keys(values)))

    def finish_job(self, record: Mapping[str, Any], job_dir: Path) -> None:
        """Mirror the job's end, then close the run: final numbers, status and reports, the artifact.

        The status goes into the config and the summary before `finish`, so an OOM job is a finished
        run whose status says oom (exit code 0), and a failed or killed one a failed run (exit code 1).
        """
        if self.run is None:
            return
        summary = record.get("summary") or {}
        final = final_row_keys(summary)
        if final:
            self._try("log", lambda: self.run.log({**final, STEP: self.step}, step=self.step))
        self._try("config", lambda: self.run.config.update(
            {k: record.get(k) for k in RUN_CONFIG_KEYS if k in record}, allow_val_change=True))
        self._try("summary", lambda: self.run.summary.update(
            {"status": record.get("status"), "error": record.get("error"),
             **({"diverged_step": record["diverged_step"]} if "diverged_step" in record else {})}))
        self._try("artifact", lambda: self._log_records(job_dir))
        self.finish(exit_code=0 if record.get("status") in EXIT_OK_STATUSES else 1)

    def _log_records(self, job_dir: Path) -> None:
        import wandb  # imported already: a run exists

        artifact = wandb.Artifact(f"records-{self.run.id}", type="job-records",
                                  metadata={"job_dir": str(job_dir)})
        for name in (RECORD_FILE, STEPS_FILE):
            if (job_dir / name).is_file():
                artifact.add_file(str(job_dir / name), name=name)
        self.run.log_artifact(artifact)

    def finish(self, exit_code: int) -> None:
        """Close the run; a non-zero `exit_code` marks it failed in W&B."""
        self._try("finish", lambda: self.run.finish(exit_code=exit_code))
        self.run = None

