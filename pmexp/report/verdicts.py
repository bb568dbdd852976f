"""Judge the strategy's success criteria on measured numbers: PASS, FAIL or n/a.

Why worst case: a criterion holds for a variant only if it holds in every configuration
where it was measured, so each verdict quotes the worst configuration and its figure;
"n/a" means nothing in the given records measures it, never that it was assumed to pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pmexp.report import fmt
from pmexp.report.gather import PMDROP_VARIANTS, MaxBatchResult, variant_order
from pmexp.report.stats import ALPHA, Comparison, is_large_or_long

__all__ = [
    "F1_SIGMA_MAX",
    "FAIL",
    "MASK_COMPRESSION_MIN",
    "MEMORY_SAVING_LARGE",
    "MEMORY_SAVING_SMALL",
    "NOT_MEASURED",
    "PASS",
    "THROUGHPUT_RATIO_MIN",
    "Verdict",
    "judge",
]

MASK_COMPRESSION_MIN = 7.5  # criterion 1: standard mask bytes / variant mask bytes
MEMORY_SAVING_SMALL = 0.05  # criterion 2, small models at seq_len < 1024
MEMORY_SAVING_LARGE = 0.10  # criterion 2, large models or seq_len >= 1024
THROUGHPUT_RATIO_MIN = 0.98  # criterion 3: variant / standard throughput
F1_SIGMA_MAX = 0.2  # criterion 4: |F1 difference| in units of standard's seed std

PASS, FAIL, NOT_MEASURED = "PASS", "FAIL", "n/a"


@dataclass(frozen=True)
class Verdict:
    """One row of the verdict table."""

    criterion: str
    variant: str
    outcome: str  # PASS, FAIL or n/a
    measured: str  # the figure the outcome rests on, or why nothing was measured


def _label(c: Comparison) -> str:
    return fmt.config_label(c.group.settings)


def _worst(
    criterion: str,
    variant: str,
    comps: Sequence[Comparison],
    value: Callable[[Comparison], float | None],
    passes: Callable[[float], bool],
    show: Callable[[float], str],
) -> Verdict:
    """Judge a lower bound: the smallest value over the configurations is the worst one."""
    measured = [(value(c), c) for c in comps if value(c) is not None]
    if not measured:
        return Verdict(criterion, variant, NOT_MEASURED, "not measured in these records")
    worst_value, worst = min(measured, key=lambda vc: vc[0])
    n_pass = sum(passes(v) for v, _ in measured)
    outcome = PASS if n_pass == len(measured) else FAIL
    text = f"worst {show(worst_value)} ({_label(worst)}); {n_pass}/{len(measured)} configs pass"
    return Verdict(criterion, variant, outcome, text)


def _compression_text(value: float) -> str:
    return "inf (no mask stored)" if math.isinf(value) else fmt.compression(value)


def _f1_verdict(criterion: str, variant: str, comps: Sequence[Comparison]) -> Verdict:
    measured = [c for c in comps if c.f1_sigma is not None]
    if not measured:
        why = "not measured in these records"
        if any(c.f1_diff is not None for c in comps):
            why = "needs >= 2 ok seeds of standard for σ"
        return Verdict(criterion, variant, NOT_MEASURED, why)
    worst = max(measured, key=lambda c: abs(c.f1_sigma or 0.0))
    n_pass = sum(abs(c.f1_sigma or 0.0) <= F1_SIGMA_MAX for c in measured)
    text = (
        f"worst ΔF1 = {fmt.sigma(worst.f1_sigma)} ({fmt.num(worst.f1_diff, 4)}, Welch p = "
        f"{fmt.pvalue(worst.f1_p)}; {_label(worst)}); {n_pass}/{len(measured)} configs pass"
    )
    widths = [(hi - lo) / 2 for c in measured if c.f1_ci_sigma for lo, hi in [c.f1_ci_sigma]]
    if widths and min(widths) > F1_SIGMA_MAX:  # the seeds cannot show equivalence within the margin
        spread = f"{min(widths):.2f}" + (f"-{max(widths):.2f}" if max(widths) > min(widths) + 0.005 else "")
        text += (f"; the 90% CIs' half-widths ({spread}σ) exceed {F1_SIGMA_MAX}σ: too few seeds to "
                 f"resolve the margin either way")
    return Verdict(criterion, variant, PASS if n_pass == len(measured) else FAIL, text)


def _step_time_verdict(criterion: str, variant: str, comps: Sequence[Comparison]) -> Verdict:
    """Criterion 3b: in no configuration are the variant's steps slower (one-sided Welch, p <= ALPHA)."""
    tested = [c for c in comps if c.step_time_p is not None]
    if not tested:
        return Verdict(criterion, variant, NOT_MEASURED, "no configuration with >= 2 timed steps on each side")
    worst = min(tested, key=lambda c: c.step_time_p or 0.0)
    n_pass = sum(not c.slower for c in tested)
    text = (f"lowest p = {fmt.pvalue(worst.step_time_p)} (step time {fmt.ratio(worst.step_time_ratio)}; "
            f"{_label(worst)}); {n_pass}/{len(tested)} configs not statistically slower")
    return Verdict(criterion, variant, PASS if n_pass == len(tested) else FAIL, text)


def _fit_verdict(
    criterion: str, variant: str, comps: Sequence[Comparison], maxbatch: Sequence[MaxBatchResult]
) -> Verdict:
    """Criterion 5: standard OOMs where the variant runs, in the sweep or in a max-batch search."""
    evidence: list[str] = []
    counter: list[str] = []
    for c in comps:
        if c.baseline is None or c.baseline.ok or "oom" not in c.baseline.status_counts:
            continue
        (evidence if c.group.ok else counter).append(
            f"{_label(c)}: standard OOM, {variant} {'ok' if c.group.ok else c.group.label}"
        )
    inconclusive: list[str] = []
    for mb in maxbatch:
        base, mine = mb.results.get("standard") or {}, mb.results.get(variant) or {}
        if base.get("max") is None or mine.get("max") is None:
            continue
        dim = "batch" if mb.search == "batch_size" else "seq_len"
        text = f"max {dim} {mine['max']} vs standard {base['max']} ({fmt.config_label(mb.settings)})"
        if base.get("hit_cap"):  # standard's limit is above the cap: nothing learnt
            inconclusive.append(f"{text}: standard hit the cap, raise it")
        elif mine["max"] > base["max"]:
            evidence.append(text)
        else:
            counter.append(text)
    for outcome, texts in ((PASS, evidence), (FAIL, counter)):
        if texts:
            more = f" (+{len(texts) - 1} more)" if len(texts) > 1 else ""
            return Verdict(criterion, variant, outcome, texts[0] + more)
    why = inconclusive[0] if inconclusive else "no standard OOM in the sweep and no max-batch search"
    return Verdict(criterion, variant, NOT_MEASURED, why)


def judge(comparisons: Sequence[Comparison], maxbatch: Sequence[MaxBatchResult] = ()) -> list[Verdict]:
    """All verdicts, per PM-Drop variant present in ``comparisons`` or ``maxbatch``.

    Args:
        comparisons: from :func:`pmexp.report.stats.compare_to_standard`.
        maxbatch: max-batch results, used by criterion 5.

    Returns:
        Rows ordered by criterion, then variant; with no PM-Drop variant at all, one n/a row
        per criterion saying so.
    """
    present = {c.group.variant for c in comparisons} | {v for mb in maxbatch for v in mb.results}
    variants = sorted((v for v in present if v in PMDROP_VARIANTS), key=variant_order)
    names = (
        f"1. mask compression >= {MASK_COMPRESSION_MIN}x",
        f"2a. peak-memory saving >= {MEMORY_SAVING_SMALL:.0%} (small models, seq_len < 1024)",
        f"2b. peak-memory saving >= {MEMORY_SAVING_LARGE:.0%} (large models or seq_len >= 1024)",
        f"3. throughput ratio >= {THROUGHPUT_RATIO_MIN}",
        f"3b. step time not statistically slower (one-sided Welch p > {ALPHA})",
        f"4. ΔF1 within ±{F1_SIGMA_MAX}σ of standard's seed spread",
        "5. fits where standard OOMs",
    )
    if not variants:
        return [Verdict(n, "-", NOT_MEASURED, "no PM-Drop variant in these records") for n in names]
    rows: list[Verdict] = []
    by_variant = {v: [c for c in comparisons if c.group.variant == v] for v in variants}
    for v in variants:
        rows.append(_worst(names[0], v, by_variant[v], lambda c: c.mask_compression,
                           lambda x: x >= MASK_COMPRESSION_MIN, _compression_text))
    for name, large, need in ((names[1], False, MEMORY_SAVING_SMALL), (names[2], True, MEMORY_SAVING_LARGE)):
        for v in variants:
            comps = [c for c in by_variant[v] if is_large_or_long(c.group.settings) == large]
            rows.append(_worst(name, v, comps, lambda c: c.memory_saving,
                               lambda x, need=need: x >= need, fmt.pct))
    for v in variants:
        rows.append(_worst(names[3], v, by_variant[v], lambda c: c.throughput_ratio,
                           lambda x: x >= THROUGHPUT_RATIO_MIN, fmt.ratio))
    for v in variants:
        rows.append(_step_time_verdict(names[4], v, by_variant[v]))
    for v in variants:
        rows.append(_f1_verdict(names[5], v, by_variant[v]))
    for v in variants:
        rows.append(_fit_verdict(names[6], v, by_variant[v], maxbatch))
    return rows
