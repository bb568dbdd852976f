"""Hydra glue: the callback that turns a multirun's records into its exit code, and job dir names.

Jobs record their own failures (pmexp.experiment.job) so that one OOM does not stop a sweep; without this
callback the sweep would then exit 0 however many jobs failed. At the end of a multirun it reads
the records written during this multirun (resumed, skipped jobs are ok by definition), prints a
one-screen summary (jobs per status, then each job dir not ok with the first line of its error) and
exits 1 when a job is not ok (0 when all are; 2 is left to usage errors of the command itself). A
launch skipped because another process held the job dir's lock (pmexp.experiment.joblock) counts as `locked`;
a record at `running` whose lock another live process holds (a second multirun in the same sweep
dir) counts as `running elsewhere` and does not fail this one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pmexp.experiment.joblock import SKIPS_FILE, held_elsewhere
from pmexp.experiment.records import RECORD_FILE, error_line

__all__ = ["EXIT_STATE", "JobStatusCallback", "count_statuses", "hydra_runtime", "job_dirname",
           "register_resolvers", "sweep_summary"]

log = logging.getLogger(__name__)
# Set where pmexp itself exits 1 (a job not ok), so pmexp.experiment.app.cli can tell it from Hydra's usage errors.
EXIT_STATE = {"job_not_ok": False}


def count_statuses(sweep_dir: Path, since: float = 0.0) -> tuple[Counter, list[tuple[Path, dict]]]:
    """Statuses of the records under `sweep_dir` written at or after `since` (a time.time()).

    Returns:
        (Counter of status -> jobs, [(record path, record) for each record not ok]).
    """
    counts: Counter = Counter()
    bad = []
    for path in sorted(Path(sweep_dir).rglob(RECORD_FILE)):
        if path.stat().st_mtime < since:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            record = {"status": "failed", "error": f"unreadable record: {e}"}
        if not isinstance(record, dict):
            record = {"status": "failed", "error": f"metrics.json holds a JSON {type(record).__name__}, not a record"}
        status = record.get("status", "failed")
        if status == "running" and held_elsewhere(path.parent):
            # another process's job (two multiruns sharing a sweep dir): not this sweep's to judge
            counts["running elsewhere"] += 1
            continue
        counts[status] += 1
        if status != "ok":
            bad.append((path, record))
    for path in sorted(Path(sweep_dir).rglob(SKIPS_FILE)):  # launches that found the job dir locked
        if path.stat().st_mtime >= since:
            counts["locked"] += 1
            bad.append((path, {"status": "locked", "error": "another process held the job dir's lock"}))
    return counts, bad


def sweep_summary(counts: Counter, bad: list[tuple[Path, dict]], limit: int = 20) -> str:
    """One screen: jobs per status, then up to `limit` job dirs not ok with their error's first line."""
    lines = ["multirun: " + (", ".join(f"{s} {n}" for s, n in counts.most_common()) or "no records written")]
    for path, record in bad[:limit]:
        lines.append(f"  {record.get('status')}: {path.parent}  {error_line(record.get('error'))}")
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more (python -m pmexp.report <sweep dir> lists them all)")
    return "\n".join(lines)


class JobStatusCallback(Callback):
    """Print the sweep's summary; exit 1 when a job's record is not `ok` (0 when all are)."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1.0  # file mtimes may be coarser than time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        counts, bad = count_statuses(Path(config.hydra.sweep.dir), since=self.started)
        summary = sweep_summary(counts, bad)
        (log.error if bad else log.info)("%s", summary)
        print(summary, file=sys.stderr)
        if bad:
            EXIT_STATE["job_not_ok"] = True
            # SystemExit is not an Exception: Hydra's callback runner lets it through.
            sys.exit(1)


def hydra_runtime() -> Any:
    """Hydra's runtime config of the job running now (overrides, sweep dir, choices), or None outside Hydra."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def job_dirname(override_dirname: str, limit: int = 150) -> str:
    """A sweep job's folder name: its overrides, flat and short enough for any filesystem.

    Deterministic, so the same sweep lands in the same folders again (resume). Slashes in values
    (paths) become `_` instead of nesting folders; past `limit` characters the name keeps its head
    and ends in a hash of the whole (folder names may not exceed 255 bytes).
    """
    name = override_dirname.replace("/", "_") or "default"
    if len(name) <= limit:
        return name
    return f"{name[: limit - 13]}~{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def register_resolvers() -> None:
    """Register `${pmexp_dirname:...}` (used by hydra.sweep.subdir in conf/train.yaml)."""
    if not OmegaConf.has_resolver("pmexp_dirname"):
        OmegaConf.register_new_resolver("pmexp_dirname", job_dirname)
