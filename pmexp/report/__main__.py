"""``python -m pmexp.report <sweep dir> [<sweep dir>...] [--out DIR]``: write the evidence report."""

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
    args = parser.parse_args(argv)
    try:
        files = build_report(args.dirs, args.out)
    except (SweepNotFoundError, EmptySweepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {files.markdown}, {files.html} and {len(files.plots)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
