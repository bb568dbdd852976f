"""Hydra glue: the callback that turns a multirun's records into its exit code, and job dir names.

Jobs record their own failures (pmexp.train) so that one OOM does not stop a sweep; without this
callback the sweep would then exit 0 however many jobs failed. At the end of a multirun it reads
the records written during this multirun (resumed, skipped jobs are ok by definition), logs one line
per job that did not end ok, and exits with the number of such jobs (capped at 125).
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

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["JobStatusCallback", "count_statuses", "job_dirname", "register_resolvers"]

log = logging.getLogger(__name__)


def count_statuses(sweep_dir: Path, since: float = 0.0) -> tuple[Counter, list[tuple[Path, dict]]]:
    """Statuses of the records under `sweep_dir` written at or after `since` (a time.time()).

    Returns:
        (Counter of status -> jobs, [(record path, record) for each record not ok]).
    """
    from pmexp.records import RECORD_FILE

    counts: Counter = Counter()
    bad = []
    for path in sorted(Path(sweep_dir).rglob(RECORD_FILE)):
        if path.stat().st_mtime < since:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            record = {"status": "failed", "error": f"unreadable record: {e}"}
        status = record.get("status", "failed")
        counts[status] += 1
        if status != "ok":
            bad.append((path, record))
    return counts, bad


class JobStatusCallback(Callback):
    """Exit a multirun with the number of jobs whose record is not `ok` (0 when all are)."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1.0  # file mtimes may be coarser than time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        counts, bad = count_statuses(Path(config.hydra.sweep.dir), since=self.started)
        for path, record in bad:
            log.error("%s: %s %s", path.parent, record.get("status"), record.get("error") or "")
        log.info("multirun records: %s", dict(counts) or "none written (all skipped?)")
        if bad:
            # SystemExit is not an Exception: Hydra's callback runner lets it through.
            sys.exit(min(len(bad), 125))


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
