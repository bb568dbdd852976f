"""One process at a time in a job dir, and what a dead process left there.

    python -m pmexp.train job_dir=outputs/x & python -m pmexp.train job_dir=outputs/x   # the second skips

A running job holds `fcntl.flock` on `<job_dir>/.pmexp.lock`; the OS releases it when the process
ends in any way (kill -9 included), so a lock never outlives its holder and needs no clean-up.
A second launch into a locked job dir logs it, appends a line to `skips.jsonl` and leaves the
record alone. A record still at `running` in a job dir nobody holds was left by a dead process:
it becomes `killed` with the steps that process logged, kept as `metrics.attemptN.json` beside
the `steps.attemptN.jsonl` its steps move to (pmexp.experiment.records.StepLog), and the job runs again.
POSIX only (fcntl); flock on NFS depends on the server (local locks on old Linux NFS clients).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from pmexp.experiment.records import RECORD_FILE, STEPS_FILE, read_record, write_record

__all__ = ["LOCK_FILE", "SKIPS_FILE", "JobLock", "held_elsewhere", "note_skip", "recover_dead_record"]

log = logging.getLogger(__name__)
LOCK_FILE = ".pmexp.lock"
SKIPS_FILE = "skips.jsonl"


class JobLock:
    """An exclusive, non-blocking flock on `<job_dir>/.pmexp.lock`; `acquire` says whether it got it."""

    def __init__(self, job_dir: Path) -> None:
        self.path = Path(job_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def held_elsewhere(job_dir: Path) -> bool:
    """Whether a live process other than this one holds the job dir's lock (its job is running now)."""
    path = Path(job_dir) / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's own lock, if it got one
    return False


def note_skip(job_dir: Path, reason: str) -> None:
    """Log a launch that did not run and append it to `skips.jsonl` (the record is not touched)."""
    log.warning("skipping %s: %s", job_dir, reason)
    with (Path(job_dir) / SKIPS_FILE).open("a") as f:
        f.write(json.dumps({"time": time.time(), "pid": os.getpid(), "reason": reason}) + "\n")


def _logged_steps(path: Path) -> int:
    """Optimizer steps in a steps file (its evaluation lines carry no `step`); a torn last line is skipped."""
    count = 0
    try:
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            count += isinstance(row, dict) and "step" in row
    except OSError:
        pass
    return count


def recover_dead_record(job_dir: Path) -> dict[str, Any] | None:
    """Call with the job dir's lock held: a record left at `running` becomes `killed` (and is returned).

    Its steps are counted from `steps.jsonl`; a copy goes to `metrics.attemptN.json`, N the number its
    steps file will take when the next attempt moves it aside.
    """
    job_dir = Path(job_dir)
    record = read_record(job_dir)
    if not record or record.get("status") != "running":
        return None
    steps = _logged_steps(job_dir / STEPS_FILE)
    record.update(status="killed", error=f"the process died while running (found at resume, pid unknown): "
                                         f"{steps} step(s) logged in {STEPS_FILE}")
    if isinstance(record.get("summary"), dict):
        record["summary"]["steps"] = steps
    write_record(job_dir, record)
    n = 1
    while (job_dir / f"steps.attempt{n}.jsonl").exists():
        n += 1
    (job_dir / f"metrics.attempt{n}.json").write_text((job_dir / RECORD_FILE).read_text())
    log.warning("%s: a record left at running by a dead process, now killed (%d steps); running again", job_dir, steps)
    return record
