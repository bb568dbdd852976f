"""Push the offline W&B runs under some folders to the W&B server (`wandb sync`, found for you).

    python -m pmexp.sync multirun/fidelity                 # every offline run of that sweep
    python -m pmexp.sync multirun outputs --project pmexp-h200 --entity my-team
    python -m pmexp.sync multirun --dry-run                # list what would be pushed
    make sync                                              # multirun/ and outputs/

Jobs write their runs offline by default (`<job_dir>/wandb/offline-run-*`); this walks the folders
for them and hands them to W&B's own `wandb sync`, which uploads history, config, summary and the
records artifact, and skips runs it already pushed (it leaves a `.synced` file). Needs `wandb login`
(or WANDB_API_KEY) and the server; nothing else in pmexp needs either.
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
