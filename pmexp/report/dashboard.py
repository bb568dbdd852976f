"""Build a sweep's W&B dashboard as code: a saved workspace and a W&B Report (wandb-workspaces).

    python -m pmexp.dashboard --project pmexp --sweep multirun/fidelity
    python -m pmexp.dashboard --project pmexp --entity my-team --sweep multirun/memory_scaling
    python -m pmexp.dashboard --project pmexp --sweep multirun/fidelity --dry-run   # print the panels, save nothing

Shows the runs whose config `sweep` is NAME (every run of the project without --sweep), grouped by
W&B group, which pmexp sets to the configuration minus the seed: each line or bar is one dropout
variant of one configuration (so one per seq_len where the sweep has several), its band or error bar
the spread over seeds. Panels: train loss and eval F1/accuracy against the optimizer step, bars of
peak memory, saved mask bytes and throughput, gradient-norm curves (global and per layer), and the
verdict table that `python -m pmexp.report DIR --wandb` logs. Every key comes from
`pmexp.experiment.wandb_keys`, the list the trainer logs with. Saving needs `wandb login` and the server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from pmexp.experiment.wandb_keys import (
    EVAL_KEYS,
    GRAD_LAYER,
    GRAD_NORM,
    MEMORY_KEYS,
    REPORT_VERDICTS,
    SPEED_KEYS,
    STEP,
    TRAIN_LOSS,
)

__all__ = ["build_report", "build_workspace", "main", "panel_keys", "sections"]

# Mean line and a band of one standard deviation over the seeds of a group.
BAND = {"groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"}


def sections() -> list[tuple[str, list[Any]]]:
    """(section title, panels) of the dashboard, shared by the workspace and the report."""
    import wandb_workspaces.reports.v2 as wr

    def line(title: str, *keys: str, **extra: Any) -> Any:
        return wr.LinePlot(title=title, x=STEP, y=list(keys), title_x="optimizer step", **BAND, **extra)

    def bars(title: str, key: str) -> Any:
        return wr.BarPlot(title=title, metrics=[key], orientation="v", **BAND)

    return [
        ("Learning", [line("train loss", TRAIN_LOSS), line("eval F1", EVAL_KEYS["eval_f1"]),
                      line("eval accuracy", EVAL_KEYS["eval_accuracy"]), line("eval loss", EVAL_KEYS["eval_loss"])]),
        ("Memory", [bars("peak allocated MB", MEMORY_KEYS["peak_allocated_mb"]),
                    bars("saved mask bytes", MEMORY_KEYS["saved_mask_bytes"]),
                    bars("saved activation bytes", MEMORY_KEYS["saved_activation_bytes"])]),
        ("Speed", [bars("throughput seq/s", SPEED_KEYS["throughput_seq_s"]),
                   bars("throughput tok/s", SPEED_KEYS["throughput_tok_s"]),
                   bars("median step time ms", SPEED_KEYS["step_time_median_ms"]),
                   bars("compile seconds after the warm-up (not in seq/s)", SPEED_KEYS["compile_step_s"])]),
        ("Gradients", [line("gradient norm", GRAD_NORM),
                       # every per-layer norm in one chart: the key names vary with the model
                       line("gradient norm per layer", metric_regex=f"^{GRAD_LAYER}.*")]),
        ("Verdicts", [wr.WeavePanelSummaryTable(table_name=REPORT_VERDICTS)]),
    ]


def _filters(sweep: str | None) -> str:
    return "" if sweep is None else f"Config('sweep') = {sweep!r}"


def build_workspace(project: str, entity: str, sweep: str | None) -> Any:
    """The saved workspace (W&B "view") of a sweep: one section per kind of key, runs grouped by group."""
    import wandb_workspaces.workspaces as ws

    return ws.Workspace(
        entity=entity, project=project, name=f"pmexp {sweep or project}",
        sections=[ws.Section(name=title, panels=panels, is_open=True) for title, panels in sections()],
        settings=ws.WorkspaceSettings(x_axis=STEP),
        runset_settings=ws.RunsetSettings(filters=_filters(sweep), groupby=[ws.Metric("Group")]),
    )


def build_report(project: str, entity: str, sweep: str | None) -> Any:
    """The W&B Report of a sweep: the same panels as the workspace, with a line of text each."""
    import wandb_workspaces.reports.v2 as wr

    def runset() -> Any:
        return wr.Runset(entity=entity, project=project, name=sweep or project, filters=_filters(sweep),
                         groupby=["group"])

    about = {
        "Learning": "Mean over seeds, band ± 1 std, per W&B group (the configuration minus the seed).",
        "Memory": "Peak CUDA memory and the bytes autograd keeps (probe), mean ± std over seeds.",
        "Speed": "Training throughput after the warm-up steps, mean ± std over seeds.",
        "Gradients": "Global gradient norm before clipping, and every layer's.",
        "Verdicts": "The success criteria judged by `python -m pmexp.report DIR --wandb`.",
    }
    blocks: list[Any] = [wr.P(f"pmexp sweep {sweep or '(all runs)'}: jobs grouped by configuration, "
                              "seeds aggregated. Built by `python -m pmexp.dashboard`.")]
    for title, panels in sections():
        blocks += [wr.H2(title), wr.P(about[title]), wr.PanelGrid(runsets=[runset()], panels=panels)]
    return wr.Report(project=project, entity=entity, title=f"pmexp: {sweep or project}"[:128], blocks=blocks)


def panel_keys(panels: Iterable[Any]) -> set[str]:
    """Every W&B key a list of panels reads (y keys, bar metrics, x axes, tables; regexes as written)."""
    keys: set[str] = set()
    for p in panels:
        keys.update(getattr(p, "y", None) or [])
        keys.update(getattr(p, "metrics", None) or [])
        for attr in ("x", "table_name", "metric_regex"):
            if getattr(p, attr, None):
                keys.add(getattr(p, attr))
    return keys


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pmexp.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="the W&B project the runs were logged to (logger.project)")
    parser.add_argument("--entity", help="W&B user or team (default: the logged-in user's default entity)")
    parser.add_argument("--sweep", help="only runs whose config `sweep` is this (the sweep dir, or logger.group)")
    parser.add_argument("--dry-run", action="store_true", help="print the sections and their keys; save nothing")
    args = parser.parse_args(argv)
    if args.dry_run:
        for title, panels in sections():
            print(f"{title}: {', '.join(sorted(panel_keys(panels)))}")
        return 0
    try:
        entity = args.entity
        if entity is None:
            import wandb

            entity = wandb.Api().default_entity
        workspace = build_workspace(args.project, entity, args.sweep).save()
        report = build_report(args.project, entity, args.sweep).save()
    except Exception as e:  # no login, no server: say what to do, no traceback
        print(f"pmexp.dashboard: could not save to W&B ({type(e).__name__}: {e}). It needs the server and "
              f"`wandb login`; push offline runs first with `python -m pmexp.sync <dir>`.", file=sys.stderr)
        return 2
    print(f"workspace: {workspace.url}\nreport: {report.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
