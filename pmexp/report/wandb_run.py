"""Log the evidence report to W&B as one run of job_type `report`, beside the sweep's jobs.

    python -m pmexp.report multirun/fidelity --wandb                 # offline unless WANDB_MODE says otherwise
    python -m pmexp.report multirun/fidelity --wandb --wandb-project pmexp-h200

Each table of the report becomes a `wandb.Table` under `report/<heading>` (the verdicts under
`report/verdicts`, the key the dashboard's verdict panel reads), each plot a `wandb.Image` under
`report/plots/<name>`, and the report's files (report.md, report.html, the PNGs) an artifact. The
run's config `sweep` and project are those the jobs logged with (their `wandb_run.json`), so
`python -m pmexp.dashboard --sweep NAME` finds the report with the jobs; its group is the sweep's
name, the prefix of every job's group.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pmexp.experiment.wandb_keys import REPORT_JOB_TYPE, REPORT_PREFIX, REPORT_VERDICTS
from pmexp.experiment.wandb_logger import read_run_files
from pmexp.report.build import ReportFiles
from pmexp.report.document import Heading, Image, Table

__all__ = ["log_report", "report_tables"]

DEFAULT_PROJECT = "pmexp"  # conf/logger/wandb.yaml's


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "table"


def report_tables(files: ReportFiles) -> dict[str, Table]:
    """The report's tables keyed by W&B name: `report/<slug of the heading above it>` (numbered if repeated)."""
    tables: dict[str, Table] = {}
    heading = "table"
    for block in files.blocks:
        if isinstance(block, Heading):
            heading = block.text
        elif isinstance(block, Table):
            key = REPORT_PREFIX + _slug(heading)
            n = 2
            while key in tables:
                key, n = f"{REPORT_PREFIX}{_slug(heading)}_{n}", n + 1
            tables[key] = block
    return tables


def _sweep_and_project(dirs: Sequence[str | Path]) -> tuple[str, str | None, str | None]:
    """The sweep name, project and entity the jobs under `dirs` logged with; the first dir otherwise."""
    runs = [r for d in dirs for r in read_run_files(Path(d))]
    first = lambda key: Counter(r.get(key) for r in runs if r.get(key)).most_common(1)  # noqa: E731
    sweep = first("sweep")
    project, entity = first("project"), first("entity")
    return (sweep[0][0] if sweep else str(dirs[0]), project[0][0] if project else None,
            entity[0][0] if entity else None)


def log_report(files: ReportFiles, dirs: Sequence[str | Path], project: str | None = None,
               entity: str | None = None, mode: str | None = None) -> Any:
    """Log `files` (from `build_report(dirs)`) as a `job_type=report` run; return the finished run.

    Args:
        files: what `pmexp.report.build_report` wrote, with its blocks.
        dirs: the sweep dirs the report was built from (their jobs' `wandb_run.json` name the sweep).
        project, entity: W&B's; default those the jobs logged with, else "pmexp" and the default entity.
        mode: offline / online / disabled; default WANDB_MODE, else offline (as the jobs).
    """
    import wandb

    sweep, job_project, job_entity = _sweep_and_project(dirs)
    out_dir = files.html.parent
    run = wandb.init(
        project=project or job_project or DEFAULT_PROJECT, entity=entity or job_entity,
        mode=mode or os.environ.get("WANDB_MODE") or "offline", dir=str(out_dir), job_type=REPORT_JOB_TYPE,
        group=sweep, name=f"report {sweep}"[:128], reinit="create_new",
        config={"sweep": sweep, "dirs": [str(d) for d in dirs], "status": "ok"},
        settings=wandb.Settings(silent=True, console="off"),
    )
    try:
        row: dict[str, Any] = {key: wandb.Table(columns=list(t.header), data=[list(r) for r in t.rows])
                               for key, t in report_tables(files).items()}
        for block in files.blocks:
            if isinstance(block, Image) and (out_dir / block.path).is_file():
                row[f"{REPORT_PREFIX}plots/{Path(block.path).stem}"] = wandb.Image(str(out_dir / block.path),
                                                                                  caption=block.alt)
        run.log(row)
        verdicts = report_tables(files).get(REPORT_VERDICTS)
        if verdicts is not None and "verdict" in verdicts.header:  # for the runs table: PASS, FAIL, n/a counts
            column = list(verdicts.header).index("verdict")
            outcomes = Counter(r[column] for r in verdicts.rows)
            run.summary.update({f"{REPORT_PREFIX}{k.lower().replace('/', '')}": v for k, v in outcomes.items()})
        artifact = wandb.Artifact(f"report-{_slug(sweep)}"[:120], type="report")
        for path in (files.markdown, files.html, *files.plots):
            artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact)
    finally:
        run.finish()
    return run
