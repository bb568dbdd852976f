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

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pmexp.experiment.wandb_sync import find_offline_runs, sync_command

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pmexp.sync", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folders to search (sweep dirs, job dirs, outputs/)")
    parser.add_argument("--project", help="override the W&B project of every run")
    parser.add_argument("--entity", help="override the W&B entity (user or team) of every run")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and what wandb sync would do")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not Path(d).exists()]
    if missing:
        print(f"pmexp.sync: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = find_offline_runs(args.dirs)
    print(f"{len(runs)} offline W&B run(s) under {', '.join(args.dirs)}")
    if not runs:
        return 0
    cmd = sync_command(runs, args.project, args.entity, args.dry_run)
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
