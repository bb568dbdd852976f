"""``python -m pmexp.report <sweep dir> [<sweep dir>...] [--out DIR] [--wandb]``: write the evidence report.

``--wandb`` also logs it to W&B as one ``job_type=report`` run (pmexp.report.wandb_run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pmexp.report.build import build_report
from pmexp.report.gather import EmptySweepError, SweepNotFoundError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pmexp.report",
        description="Gather metrics.json (and maxbatch.json) under sweep dirs; write report.md, "
        "report.html and PNG plots.",
    )
    parser.add_argument("dirs", nargs="+", metavar="SWEEP_DIR",
                        help="multirun directory (job dirs at any depth) or max-batch --out dir")
    parser.add_argument("--out", default=None, help="output directory (default: the first SWEEP_DIR)")
    parser.add_argument("--wandb", action="store_true",
                        help="also log the report (tables, plots, verdicts) as a job_type=report W&B run; "
                        "mode from WANDB_MODE, else offline")
    parser.add_argument("--wandb-project", default=None, help="W&B project (default: the jobs' own)")
    parser.add_argument("--wandb-entity", default=None, help="W&B entity (default: the jobs' own)")
    args = parser.parse_args(argv)
    try:
        files = build_report(args.dirs, args.out)
    except (SweepNotFoundError, EmptySweepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {files.markdown}, {files.html} and {len(files.plots)} plots")
    if args.wandb:
        from pmexp.report.wandb_run import log_report

        try:
            run = log_report(files, args.dirs, args.wandb_project, args.wandb_entity)
        except Exception as exc:  # the report files are written; W&B is a mirror
            print(f"error: W&B could not log the report ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 1
        print(f"W&B report run {run.id} ({run.settings.mode}) in {run.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
