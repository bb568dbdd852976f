"""Evidence report over sweep records: tables, statistics against standard, plots, verdicts.

Usage: ``python -m pmexp.report <sweep dir> [<sweep dir>...] [--out DIR]``.
"""

from pmexp.report.build import ReportFiles, build_report
from pmexp.report.gather import (
    EmptySweepError,
    SweepNotFoundError,
    gather_maxbatch,
    gather_rows,
    settings_of,
)
from pmexp.report.stats import compare_to_standard, group_rows
from pmexp.report.verdicts import Verdict, judge

__all__ = [
    "EmptySweepError",
    "ReportFiles",
    "SweepNotFoundError",
    "Verdict",
    "build_report",
    "compare_to_standard",
    "gather_maxbatch",
    "gather_rows",
    "group_rows",
    "judge",
    "settings_of",
]
