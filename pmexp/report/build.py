"""Assemble the report: gather records, compute tables and verdicts, plot, write md + html.

Why one function: ``build_report`` is what the CLI calls and what tests call, so the files a
test checks are exactly the files a user gets.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmexp.report import fmt, tables
from pmexp.report.document import (
    Block,
    Heading,
    Image,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from pmexp.report.gather import gather_maxbatch, gather_rows
from pmexp.report.plots import plot_loss_curves, plot_reference_curves, plot_vs_seq_len
from pmexp.report.stats import ALPHA, compare_to_standard, group_rows
from pmexp.report.verdicts import judge

__all__ = ["ReportFiles", "build_report"]

_ENV_KEYS = ("device_name", "cuda", "torch", "transformers", "python", "pmexp_commit")


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote."""

    markdown: Path
    html: Path
    plots: tuple[Path, ...]
    blocks: tuple[Block, ...] = ()  # the document itself: what `--wandb` logs as tables and images


def _env_table(envs: Sequence[dict]) -> Table:
    counts = Counter(tuple(str(e.get(k) or fmt.MISSING) for k in _ENV_KEYS) for e in envs)
    return Table([*_ENV_KEYS, "jobs"], [[*key, str(n)] for key, n in counts.most_common()],
                 align_right=False)


def build_report(dirs: Sequence[str | Path], out: str | Path | None = None) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and PNG plots for the sweeps in ``dirs``.

    Args:
        dirs: sweep directories (job dirs with ``metrics.json`` at any depth) and/or max-batch
            ``--out`` directories.
        out: where to write; default the first of ``dirs``.

    Returns:
        The paths written.

    Raises:
        SweepNotFoundError: a directory does not exist.
        EmptySweepError: no job record and no max-batch result under ``dirs``.
    """
    rows = gather_rows(dirs)
    maxbatch = gather_maxbatch(dirs)
    roots = [Path(d) for d in dirs]
    out_dir = Path(out) if out is not None else roots[0]
    out_dir.mkdir(parents=True, exist_ok=True)

    groups = group_rows(rows)
    comparisons = compare_to_standard(groups)
    verdicts = judge(comparisons, maxbatch)

    plots = [
        *plot_vs_seq_len(groups, "peak_allocated_mb", "peak allocated MB", out_dir, "memory_vs_seq_len"),
        *plot_vs_seq_len(groups, "throughput_seq_s", "throughput seq/s", out_dir, "throughput_vs_seq_len"),
        *plot_loss_curves(groups, out_dir),
        *plot_reference_curves(groups, out_dir),
    ]

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks: list[Block] = [
        Heading("pmexp report", 1),
        Paragraph(f"Generated {now} by `python -m pmexp.report` from: "
                  + ", ".join(f"`{r}`" for r in roots) + "."),
        Heading("Jobs by status"),
        tables.status_table(rows),
    ]
    problems = tables.problem_table(rows, roots)
    if problems is not None:
        blocks += [Paragraph("Jobs that did not finish (OOM jobs appear as OOM in the tables):"), problems]
    if rows:
        blocks += [Heading("Environment"), _env_table([r["env"] for r in rows])]
    blocks += [
        Heading("Verdicts"),
        Paragraph("Each criterion is judged per PM-Drop variant on its worst configuration; "
                  "n/a means these records do not measure it."),
        tables.verdict_table(verdicts),
    ]
    if groups:
        common = tables.common_settings(groups)
        distributed = [] if tables.memory_speed_metrics(groups) == tables.MEMORY_SPEED_METRICS else [
            Paragraph("Jobs on several processes (world_size > 1): peak alloc MB is rank 0's, the max and "
                      "mean over ranks are each process's peak; seq/s and tok/s count every rank.")]
        blocks += [Heading("Results per configuration"), *([common] if common else []),
                   Paragraph("Mean ± sample std over the ok seeds; a configuration with no ok "
                             "seed shows its status (OOM, failed, killed) instead."),
                   Heading("Memory and speed", 3), *distributed,
                   tables.metric_table(groups, tables.memory_speed_metrics(groups)),
                   Heading("Quality", 3), tables.metric_table(groups, tables.QUALITY_METRICS)]
    if comparisons:
        blocks += [
            Heading("Against standard"),
            Paragraph("Same settings except the variant. Memory saving = 1 - peak_variant / "
                      "peak_standard; throughput ratio = variant / standard (seq/s); mask "
                      "compression = standard's saved mask bytes / the variant's (inf: the "
                      "variant stores no mask); ΔF1 = variant - standard with Welch's t-test; "
                      "σ = std of standard's F1 over seeds; 90% CI = Welch's interval of ΔF1 in σ "
                      "(equivalence within ±m is shown, by two one-sided tests at 5%, when it lies "
                      "inside ±m; with n seeds a side and equal spreads its half-width is t·σ·√(2/n): "
                      "1.18σ at n = 5, where t = 1.86)."),
            tables.comparison_table(comparisons),
            Heading("Step times against standard"),
            Paragraph(f"Per-step wall times (steps.jsonl's step_time_ms, each job's first trainer.timing_warmup "
                      f"steps left out), pooled over the ok seeds. Step time ratio = mean variant / mean standard; "
                      f"Welch's t-test, one-sided (H1: the variant's steps take longer, so a faster variant is "
                      f"never 'slower'); p > {ALPHA} reads 'not statistically slower'. Steps of one job are not "
                      f"independent draws: the p-value screens noise, it is not an exact error rate."),
            tables.step_time_table(comparisons),
        ]
    with_reference = [g for g in groups if g.settings.get("reference")]
    if with_reference:
        blocks += [Heading("Against the lockstep reference"),
                   Paragraph("Jobs run with trainer.reference: a standard-dropout copy from the same initial "
                             "weights, fed the same batches (pmexp/experiment/reference.py). Per step: cosine and "
                             "norm ratio of the two parameter updates, loss difference; here their means over steps, "
                             "then mean ± std over seeds. standard against standard_reseed is the noise floor."),
                   tables.metric_table(with_reference, tables.REFERENCE_METRICS)]
    memory = tables.memory_tables(groups, maxbatch)
    if memory:
        blocks += [Heading("Memory technique"),
                   Paragraph("Each memory technique per dropout variant against memory=none with the "
                             "standard variant, every other setting equal: peak vs base = peak alloc MB "
                             "/ the base's, seq/s vs base = seq/s / the base's; max batch from "
                             "`python -m pmexp.maxbatch` with the same settings (≥: it hit the cap).")]
        for title, table in memory:
            blocks += [*([Heading(title, 3)] if title else []), table]
    if maxbatch:
        blocks += [Heading("Max batch"),
                   Paragraph("Largest value that trained without OOM, per variant, from "
                             "`python -m pmexp.maxbatch` (doubling, then binary search)."),
                   tables.maxbatch_table(maxbatch)]
    if plots:
        blocks.append(Heading("Plots"))
        blocks += [Image(path.name, caption) for path, caption in plots]

    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(blocks))
    html_path.write_text(to_html(blocks, "pmexp report"))
    return ReportFiles(md_path, html_path, tuple(p for p, _ in plots), tuple(blocks))
