"""Turn groups, comparisons, verdicts and max-batch results into report tables.

Why: a configuration whose seeds all ran out of memory must still appear, with "OOM" in
its cells; these functions are where that rule is applied, for every table alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pmexp.experiment.records import STATUSES
from pmexp.report import fmt
from pmexp.report.document import Paragraph, Table
from pmexp.report.gather import GROUP_KEYS, MaxBatchResult, Row, memory_order, variant_order
from pmexp.report.stats import (
    ALPHA,
    Comparison,
    Group,
    Stat,
    compare_to_standard,
    setting_order,
    split_groups,
    status_name,
)
from pmexp.report.verdicts import Verdict

__all__ = [
    "MEMORY_BASELINE",
    "MEMORY_SPEED_METRICS",
    "QUALITY_METRICS",
    "RANK_PEAK_METRICS",
    "REFERENCE_METRICS",
    "common_settings",
    "comparison_table",
    "maxbatch_table",
    "memory_speed_metrics",
    "memory_tables",
    "metric_table",
    "problem_table",
    "status_table",
    "step_time_table",
    "step_time_text",
    "varying_keys",
    "verdict_table",
]

# (summary key, column title, decimals)
MEMORY_SPEED_METRICS: tuple[tuple[str, str, int], ...] = (
    ("peak_allocated_mb", "peak alloc MB", 1),
    ("peak_reserved_mb", "peak reserved MB", 1),
    ("saved_mask_bytes", "saved mask bytes", 0),
    ("throughput_seq_s", "seq/s", 2),
    ("throughput_tok_s", "tok/s", 0),
    ("step_time_median_ms", "step median ms", 2),
)
QUALITY_METRICS: tuple[tuple[str, str, int], ...] = (
    ("eval_f1", "F1", 4),
    ("eval_accuracy", "accuracy", 4),
    ("eval_loss", "eval loss", 4),
    ("train_loss_final", "train loss", 4),
)
#: A lockstep reference run's summary (pmexp.experiment.reference): the variant's updates against the reference's.
REFERENCE_METRICS: tuple[tuple[str, str, int], ...] = (
    ("ref_update_cos_mean", "update cos mean", 6),
    ("ref_update_cos_min", "update cos min", 6),
    ("ref_update_norm_ratio_mean", "norm ratio mean", 4),
    ("ref_loss_diff_abs_mean", "|loss diff| mean", 6),
    ("ref_steps_compared", "steps compared", 0),
)
#: Per-process peaks of a distributed job, whose ``peak_allocated_mb`` is rank 0's own.
RANK_PEAK_METRICS: tuple[tuple[str, str, int], ...] = (
    ("peak_allocated_mb_max", "peak alloc MB max over ranks", 1),
    ("peak_allocated_mb_mean", "peak alloc MB mean over ranks", 1),
)
#: What the memory-technique tables divide by: no technique, standard dropout.
MEMORY_BASELINE: dict[str, Any] = {"memory": "none", "variant": "standard"}
_MAX_PROBLEMS = 50


def varying_keys(groups: Sequence[Group]) -> list[str]:
    """Settings that take more than one value across ``groups``, then ``variant`` (always)."""
    varying = [k for k in GROUP_KEYS if len({repr(g.settings[k]) for g in groups}) > 1]
    return [k for k in varying if k != "variant"] + ["variant"]


def common_settings(groups: Sequence[Group]) -> Paragraph | None:
    """One line naming the settings shared by every configuration (kept out of table columns)."""
    fixed = [k for k in GROUP_KEYS if k not in varying_keys(groups)]
    if not groups or not fixed:
        return None
    text = ", ".join(f"{k}={groups[0].settings[k]}" for k in fixed)
    return Paragraph(f"Common to every configuration: {text}.")


def _counts_text(counts: Counter[str]) -> str:
    return ", ".join(f"{status_name(s)} {counts[s]}" for s in STATUSES if counts.get(s))


def status_table(rows: Sequence[Row]) -> Table:
    """Jobs by status, every status listed (zeros included) so absence is visible too."""
    counts = Counter(r["status"] for r in rows)
    body = [[status_name(s), str(counts.get(s, 0))] for s in STATUSES]
    return Table(["status", "jobs"], [*body, ["total", str(len(rows))]])


def problem_table(rows: Sequence[Row], roots: Sequence[Path]) -> Table | None:
    """Failed, killed, diverged, invalid and still-running jobs with the first line of their error."""
    bad = [r for r in rows if r["status"] in ("failed", "killed", "running", "diverged", "invalid")]
    if not bad:
        return None

    def where(job_dir: str) -> str:
        for root in roots:
            try:
                return str(Path(job_dir).relative_to(root)) or "."
            except ValueError:
                continue
        return job_dir

    body = [
        [where(r["job_dir"]), r["status"], fmt.config_label(r), fmt.first_line(r.get("error"))]
        for r in bad[:_MAX_PROBLEMS]
    ]
    if len(bad) > _MAX_PROBLEMS:
        body.append([f"... {len(bad) - _MAX_PROBLEMS} more", "", "", ""])
    return Table(["job dir", "status", "configuration", "error"], body, align_right=False)


def _cell(group: Group, stat: Stat, digits: int) -> str:
    if not group.ok:
        return group.label
    if stat.mean is None:
        return fmt.MISSING
    if stat.std is None:
        return fmt.num(stat.mean, digits)
    return f"{fmt.num(stat.mean, digits)} ± {fmt.num(stat.std, digits)}"


def metric_table(groups: Sequence[Group], metrics: Sequence[tuple[str, str, int]]) -> Table:
    """One row per configuration: varying settings, job counts, then mean ± std over ok seeds."""
    keys = varying_keys(groups)
    body = [
        [*(str(g.settings[k]) for k in keys), _counts_text(g.status_counts),
         *(_cell(g, g.stat(m), d) for m, _, d in metrics)]
        for g in groups
    ]
    return Table([*keys, "jobs", *(title for _, title, _ in metrics)], body)


def memory_speed_metrics(groups: Sequence[Group]) -> tuple[tuple[str, str, int], ...]:
    """:data:`MEMORY_SPEED_METRICS`, plus :data:`RANK_PEAK_METRICS` when a job ran on several processes."""
    if not any(isinstance(n := g.settings.get("world_size"), (int, float)) and n > 1 for g in groups):
        return MEMORY_SPEED_METRICS
    return (MEMORY_SPEED_METRICS[0], *RANK_PEAK_METRICS, *MEMORY_SPEED_METRICS[1:])


def _missing(c: Comparison, base: str = "standard") -> str:
    if c.baseline is None:
        return f"no {base} run"
    if not c.baseline.ok:
        return f"{base} {c.baseline.label}"
    if not c.group.ok:
        return c.group.label
    return fmt.MISSING


def _shown(value: float | None, text: str, c: Comparison) -> str:
    """``text`` where the value was measured, else why it is missing."""
    return text if value is not None else _missing(c)


def comparison_table(comparisons: Sequence[Comparison]) -> Table:
    """Each variant against standard with every other setting equal."""
    body = [
        [
            fmt.config_label(c.group.settings), c.group.variant,
            _shown(c.memory_saving, fmt.pct(c.memory_saving), c),
            _shown(c.throughput_ratio, fmt.ratio(c.throughput_ratio), c),
            _shown(c.mask_compression, fmt.compression(c.mask_compression), c),
            _shown(c.f1_diff, fmt.num(c.f1_diff, 4), c),
            fmt.pvalue(c.f1_p),
            fmt.sigma(c.f1_sigma),
            fmt.sigma_interval(c.f1_ci_sigma),
        ]
        for c in comparisons
    ]
    header = ["configuration", "variant", "memory saving", "throughput ratio", "mask compression",
              "ΔF1", "Welch p", "ΔF1 / σ(standard)", "90% CI / σ"]
    return Table(header, body)


def step_time_text(c: Comparison) -> str:
    """The step-time verdict of one comparison: 'not statistically slower (p > 0.05)' or 'slower (p = …)'."""
    if c.slower is None:
        return _missing(c) if c.step_time_ratio is None else "untested (< 2 timed steps a side, or no spread)"
    if c.slower:
        return f"slower (p = {fmt.pvalue(c.step_time_p)} ≤ {ALPHA})"
    return f"not statistically slower (p > {ALPHA})"


def step_time_table(comparisons: Sequence[Comparison]) -> Table:
    """Per-step times against standard: throughput ratio, step-time ratio, one-sided Welch's test."""
    body = [
        [
            fmt.config_label(c.group.settings), c.group.variant,
            _shown(c.throughput_ratio, fmt.ratio(c.throughput_ratio), c),
            _shown(c.step_time_ratio, fmt.ratio(c.step_time_ratio), c),
            f"{c.step_counts[0]} / {c.step_counts[1]}",
            fmt.pvalue(c.step_time_p),
            step_time_text(c),
        ]
        for c in comparisons
    ]
    header = ["configuration", "variant", "throughput ratio", "step time ratio", "timed steps (variant / standard)",
              "Welch p (one-sided)", "verdict"]
    return Table(header, body, align_right=False)


def verdict_table(verdicts: Sequence[Verdict]) -> Table:
    return Table(
        ["criterion", "variant", "verdict", "measured"],
        [[v.criterion, v.variant, v.outcome, v.measured] for v in verdicts],
        align_right=False,
    )


def maxbatch_table(results: Sequence[MaxBatchResult]) -> Table:
    """Largest batch (or seq_len) per variant, with the gain over standard's."""
    body: list[list[str]] = []
    ordered = sorted(results, key=lambda r: [setting_order(k, r.settings.get(k)) for k in GROUP_KEYS])
    for mb in ordered:
        base = (mb.results.get("standard") or {}).get("max")
        for variant in sorted(mb.results, key=variant_order):
            res = mb.results[variant]
            best = res.get("max")
            gain = fmt.pct(best / base - 1) if best is not None and base and variant != "standard" else ""
            notes = []
            if res.get("hit_cap"):
                notes.append("hit the cap")
            if not mb.complete:
                notes.append("search incomplete")
            if res.get("error"):
                notes.append(fmt.first_line(str(res["error"])))
            body.append([
                fmt.config_label(mb.settings), mb.search, variant,
                fmt.MISSING if best is None else str(best),
                fmt.num(res.get("peak_allocated_mb"), 1), gain, str(res.get("probes", "")),
                str(mb.env.get("device_name") or ""), "; ".join(notes),
            ])
    header = ["configuration", "searched", "variant", "max", "peak alloc MB at max", "vs standard",
              "probes", "device", "notes"]
    return Table(header, body)


def _max_batch(results: Sequence[MaxBatchResult], settings: dict[str, Any]) -> str | None:
    """Max batch found for the configuration ``settings`` ('≥': the search hit its cap), None if not searched."""
    for mb in results:
        same = all(v is None or settings.get(k) == v for k, v in mb.settings.items() if k in GROUP_KEYS)
        res = mb.results.get(str(settings["variant"])) or {}
        if mb.search == "batch_size" and same and res.get("max") is not None:
            return ("≥" if res.get("hit_cap") else "") + str(res["max"])
    return None


def memory_tables(groups: Sequence[Group], maxbatch: Sequence[MaxBatchResult] = ()) -> list[tuple[str, Table]]:
    """Memory techniques (rows) by dropout variant against :data:`MEMORY_BASELINE`, other settings equal.

    One table per combination of the other varying settings, titled by it; none unless ``memory``
    varies. Each variant gets peak alloc MB and seq/s (mean ± std), their ratios to the baseline,
    and its max batch where a batch-size search with the same settings is among ``maxbatch``.
    """
    if len({g.settings["memory"] for g in groups}) < 2:
        return []
    comps = {id(c.group): c for c in compare_to_standard(groups, MEMORY_BASELINE)}

    def ratio(g: Group | None, attr: str) -> str:
        if g is None:
            return fmt.MISSING
        if not g.ok:
            return g.label
        c = comps.get(id(g))
        if c is None:
            return fmt.ratio(1.0)  # the baseline itself
        got = getattr(c, attr)
        return _missing(c, "base") if got is None else fmt.ratio(got)

    def cell(g: Group | None, metric: str, digits: int) -> str:
        return fmt.MISSING if g is None else _cell(g, g.stat(metric), digits)

    outer = [k for k in varying_keys(groups) if k not in MEMORY_BASELINE]
    out: list[tuple[str, Table]] = []
    for combo, members in split_groups(groups, outer).items():
        by = {(g.settings["memory"], g.variant): g for g in members}
        variants = sorted({v for _, v in by}, key=variant_order)
        memories = sorted({m for m, _ in by}, key=memory_order)
        batches = {k: _max_batch(maxbatch, g.settings) for k, g in by.items()}
        with_batch = any(b is not None for b in batches.values())
        header = ["memory"]
        for v in variants:
            header += [f"{v} peak alloc MB", f"{v} peak vs base", f"{v} seq/s", f"{v} seq/s vs base"]
            header += [f"{v} max batch"] if with_batch else []
        body = []
        for m in memories:
            row = [str(m)]
            for v in variants:
                g = by.get((m, v))
                row += [cell(g, "peak_allocated_mb", 1), ratio(g, "peak_ratio"),
                        cell(g, "throughput_seq_s", 2), ratio(g, "throughput_ratio")]
                row += [batches.get((m, v)) or fmt.MISSING] if with_batch else []
            body.append(row)
        title = ", ".join(f"{k}={v}" for k, v in zip(outer, combo, strict=True))
        out.append((title, Table(header, body)))
    return out
