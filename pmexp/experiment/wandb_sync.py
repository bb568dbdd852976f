"""Find the offline W&B runs under some folders and build the `wandb sync` command that pushes them.

    python -m pmexp.sync multirun/fidelity --dry-run      # the command line (pmexp/sync.py) around these

Jobs write their runs offline by default (`<job_dir>/wandb/offline-run-*`); W&B's own `wandb sync`
uploads history, config, summary and the records artifact, and skips runs it already pushed.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["find_offline_runs", "sync_command"]

OFFLINE_GLOB = "offline-run-*"


def find_offline_runs(dirs: Sequence[str | Path]) -> list[Path]:
    """Offline run folders (holding a `run-*.wandb` log) under `dirs`, oldest first by name."""
    runs = {p for d in dirs for p in Path(d).rglob(OFFLINE_GLOB) if p.is_dir() and any(p.glob("run-*.wandb"))}
    return sorted(runs, key=lambda p: (p.name, str(p)))


def _wandb_cli() -> list[str]:
    """The `wandb` command of this Python's environment (the venv's), else `python -m wandb`."""
    cli = shutil.which("wandb", path=str(Path(sys.executable).parent))
    return [cli] if cli else [sys.executable, "-m", "wandb"]


def sync_command(runs: Sequence[Path], project: str | None = None, entity: str | None = None,
                 dry_run: bool = False) -> list[str]:
    """The `wandb sync` command line that pushes `runs` (no prompt; already synced runs skipped)."""
    cmd = [*_wandb_cli(), "sync", "--yes"]
    if project:
        cmd += ["--project", project]
    if entity:
        cmd += ["--entity", entity]
    if dry_run:
        cmd.append("--dry-run")
    return cmd + [str(r) for r in runs]
