"""Group job rows into configurations and compare each variant against ``standard``.

Why separate from rendering: the numbers (means, ratios, Welch's test) are what tests pin
down and what the verdicts judge; formatting them is a different concern (``tables.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from pmexp.experiment.records import STATUSES
from pmexp.report.gather import GROUP_KEYS, Row, memory_order, variant_order

__all__ = [
    "ALPHA",
    "LARGE_SEQ_LEN",
    "STANDARD",
    "Comparison",
    "Group",
    "Stat",
    "compare_to_standard",
    "group_rows",
    "is_large_or_long",
    "setting_order",
    "slower_p",
    "sort_key",
    "split_groups",
    "status_label",
    "status_name",
]

#: From this sequence length on, a configuration counts as "long" for criterion 2.
LARGE_SEQ_LEN = 1024
#: Significance level of the step-time test: p > ALPHA reads "not statistically slower".
ALPHA = 0.05
#: ΔF1's confidence interval: 90%, the two one-sided tests' (TOST) interval at ALPHA, so "equivalent
#: within ±m" is shown exactly when the interval lies inside ±m.
CI_LEVEL = 1 - 2 * ALPHA
#: The baseline settings of :func:`compare_to_standard` by default.
STANDARD: dict[str, Any] = {"variant": "standard"}


def sort_key(value: Any) -> tuple[int, float, str]:
    """Order mixed settings: numbers numerically, then strings, ``None`` last."""
    if value is None:
        return 2, 0.0, ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0, float(value), ""
    return 1, 0.0, str(value)


def setting_order(key: str, value: Any) -> tuple[Any, ...]:
    """Order one setting's values: variants standard first, memory techniques none first, else :func:`sort_key`."""
    if key == "variant":
        return variant_order(value)
    return memory_order(value) if key == "memory" else sort_key(value)


def status_name(status: str) -> str:
    """How tables write a status: 'oom' reads 'OOM', the others as they are."""
    return "OOM" if status == "oom" else status


def status_label(counts: Counter[str]) -> str:
    """Label of a configuration none of whose jobs finished: 'OOM', 'failed', 'OOM/killed'..."""
    names = [s for s in STATUSES if counts.get(s) and s != "ok"]
    return "/".join(status_name(s) for s in names) or "no jobs"


@dataclass(frozen=True)
class Stat:
    """Mean and sample std (ddof=1) of one metric over a configuration's ok seeds."""

    mean: float | None
    std: float | None  # None with fewer than two values
    n: int
    values: tuple[float, ...]


@dataclass(frozen=True)
class Group:
    """One configuration (all settings but the seed) and its jobs, whatever their status."""

    settings: dict[str, Any]
    rows: tuple[Row, ...]

    @property
    def variant(self) -> str:
        return str(self.settings.get("variant"))

    @property
    def status_counts(self) -> Counter[str]:
        return Counter(r["status"] for r in self.rows)

    @property
    def ok(self) -> bool:
        """True when at least one seed finished; its metrics are then the ok seeds' ones."""
        return self.status_counts.get("ok", 0) > 0

    @property
    def label(self) -> str:
        """What a metric cell shows when no seed finished ('OOM', 'failed', ...)."""
        return status_label(self.status_counts)

    def values(self, metric: str) -> list[float]:
        """The metric over ok seeds, seed order, skipping seeds that did not record it."""
        rows = sorted((r for r in self.rows if r["status"] == "ok"), key=lambda r: sort_key(r.get("seed")))
        return [r[metric] for r in rows if r.get(metric) is not None]

    def stat(self, metric: str) -> Stat:
        vals = self.values(metric)
        if not vals:
            return Stat(None, None, 0, ())
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        return Stat(float(np.mean(vals)), std, len(vals), tuple(vals))


def group_rows(rows: Sequence[Row]) -> list[Group]:
    """Group rows by every setting except the seed, sorted by model, precision, ..., variant."""
    buckets: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        buckets.setdefault(tuple(row.get(k) for k in GROUP_KEYS), []).append(row)
    order = [k for k in GROUP_KEYS if k != "variant"]

    def key(item: tuple[tuple[Any, ...], list[Row]]) -> tuple[Any, ...]:
        settings = dict(zip(GROUP_KEYS, item[0], strict=True))
        return (*(setting_order(k, settings[k]) for k in order), variant_order(settings["variant"]))

    return [Group(dict(zip(GROUP_KEYS, k, strict=True)), tuple(v)) for k, v in sorted(buckets.items(), key=key)]


def split_groups(groups: Sequence[Group], keys: Sequence[str]) -> dict[tuple[Any, ...], list[Group]]:
    """Groups by their values of ``keys``, in table order (:func:`setting_order`)."""
    out: dict[tuple[Any, ...], list[Group]] = {}
    for g in groups:
        out.setdefault(tuple(g.settings[k] for k in keys), []).append(g)

    def order(item: tuple[tuple[Any, ...], list[Group]]) -> list[Any]:
        return [setting_order(k, v) for k, v in zip(keys, item[0], strict=True)]

    return dict(sorted(out.items(), key=order))


def is_large_or_long(settings: dict[str, Any]) -> bool:
    """Criterion 2 asks 10% of large models (name contains 'large') or seq_len >= 1024, else 5%."""
    seq_len = settings.get("seq_len")
    long = isinstance(seq_len, (int, float)) and seq_len >= LARGE_SEQ_LEN
    return long or "large" in str(settings.get("model") or "")


@dataclass(frozen=True)
class Comparison:
    """A variant's configuration against ``standard`` with every other setting equal.

    Ratios use the means over ok seeds; a field is ``None`` when either side has no value
    (``baseline`` None: no standard run; otherwise see the groups' labels).
    """

    group: Group
    baseline: Group | None
    memory_saving: float | None  # 1 - peak_variant / peak_standard
    throughput_ratio: float | None  # variant / standard
    mask_compression: float | None  # standard mask bytes / variant's; inf when the variant saves none
    f1_diff: float | None  # mean F1 variant - standard
    f1_p: float | None  # Welch's t-test p-value (needs >= 2 ok seeds each side)
    f1_sigma: float | None  # f1_diff / std of standard's F1 over seeds
    f1_ci_sigma: tuple[float, float] | None = None  # Welch CI_LEVEL interval of f1_diff, over that std
    step_time_ratio: float | None = None  # mean per-step time, variant / standard (warm-up left out)
    step_time_p: float | None = None  # one-sided Welch p of "the variant's steps take longer"
    step_counts: tuple[int, int] = (0, 0)  # timed steps pooled over ok seeds: (variant, standard)

    @property
    def slower(self) -> bool | None:
        """True when the variant's steps are slower at significance ``ALPHA``; None when untested."""
        return None if self.step_time_p is None else self.step_time_p <= ALPHA

    @property
    def peak_ratio(self) -> float | None:
        """peak_variant / peak_standard."""
        return None if self.memory_saving is None else 1.0 - self.memory_saving


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def _compression(standard: float | None, variant: float | None) -> float | None:
    if standard is None or variant is None or standard <= 0:
        return None
    return math.inf if variant == 0 else standard / variant


def welch(variant: Sequence[float], standard: Sequence[float], level: float = CI_LEVEL,
          ) -> tuple[float | None, tuple[float, float] | None]:
    """Welch's two-sided p-value and ``level`` confidence interval of mean(variant) - mean(standard),
    from one test; (None, None) with fewer than two values a side, an interval of None with no spread
    on both sides (identical seeds: the difference is exact) and either None where scipy gives NaN."""
    if len(variant) < 2 or len(standard) < 2:
        return None, None
    result = sps.ttest_ind(variant, standard, equal_var=False)
    p = float(result.pvalue)
    interval = None
    if np.ptp(variant) != 0 or np.ptp(standard) != 0:
        ci = result.confidence_interval(level)
        low, high = float(ci.low), float(ci.high)
        interval = None if math.isnan(low) or math.isnan(high) else (low, high)
    return (None if math.isnan(p) else p), interval


def slower_p(variant: Sequence[float], standard: Sequence[float]) -> float | None:
    """One-sided Welch's t-test p-value of H1 "variant's mean step time > standard's".

    One-sided because the claim under test is "not slower": a faster variant is no evidence
    against it. Steps of one job are not independent draws (allocator, thermal drift), so
    the p-value is a screen against noise, not an exact error rate. None with fewer than two
    times on a side, or when both sides have no spread (scipy gives NaN).
    """
    if len(variant) < 2 or len(standard) < 2:
        return None
    if np.ptp(variant) == 0 and np.ptp(standard) == 0:  # scipy would warn, then give NaN
        return None
    p = float(sps.ttest_ind(variant, standard, equal_var=False, alternative="greater").pvalue)
    return None if math.isnan(p) else p


def _pooled_steps(group: Group) -> list[float]:
    """Timed step times (ms) of the group's ok seeds, seed order, concatenated."""
    rows = sorted((r for r in group.rows if r["status"] == "ok"), key=lambda r: sort_key(r.get("seed")))
    return [t for r in rows for t in r.get("step_times_ms") or ()]


def _sigma(diff: float | None, std: float | None) -> float | None:
    if diff is None or std is None:
        return None
    if std == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / std


def _ci_in_sigma(ci: tuple[float, float] | None, std: float | None) -> tuple[float, float] | None:
    if ci is None or not std:
        return None
    return ci[0] / std, ci[1] / std


def compare_to_standard(groups: Sequence[Group], baseline: Mapping[str, Any] = STANDARD) -> list[Comparison]:
    """One :class:`Comparison` per configuration that is not a baseline, in ``groups`` order.

    A baseline is a configuration with the ``baseline`` settings (default: the ``standard``
    variant); each configuration is compared with the baseline whose other settings are equal.
    """
    def others(g: Group) -> tuple[Any, ...]:
        return tuple(g.settings[k] for k in GROUP_KEYS if k not in baseline)

    def is_base(g: Group) -> bool:
        return all(g.settings[k] == v for k, v in baseline.items())

    standards = {others(g): g for g in groups if is_base(g)}
    out: list[Comparison] = []
    for group in groups:
        if is_base(group):
            continue
        base = standards.get(others(group))
        if base is None:
            out.append(Comparison(group, None, None, None, None, None, None, None))
            continue
        peak_v, peak_s = group.stat("peak_allocated_mb").mean, base.stat("peak_allocated_mb").mean
        ratio = _ratio(peak_v, peak_s)
        f1_v, f1_s = group.stat("eval_f1"), base.stat("eval_f1")
        diff = None if f1_v.mean is None or f1_s.mean is None else f1_v.mean - f1_s.mean
        f1_p, f1_ci = welch(f1_v.values, f1_s.values)
        steps_v, steps_s = _pooled_steps(group), _pooled_steps(base)
        mean_v = float(np.mean(steps_v)) if steps_v else None
        mean_s = float(np.mean(steps_s)) if steps_s else None
        out.append(
            Comparison(
                group=group,
                baseline=base,
                memory_saving=None if ratio is None else 1.0 - ratio,
                throughput_ratio=_ratio(
                    group.stat("throughput_seq_s").mean, base.stat("throughput_seq_s").mean
                ),
                mask_compression=_compression(
                    base.stat("saved_mask_bytes").mean, group.stat("saved_mask_bytes").mean
                ),
                f1_diff=diff,
                f1_p=f1_p,
                f1_sigma=_sigma(diff, f1_s.std),
                f1_ci_sigma=_ci_in_sigma(f1_ci, f1_s.std),
                step_time_ratio=_ratio(mean_v, mean_s),
                step_time_p=slower_p(steps_v, steps_s),
                step_counts=(len(steps_v), len(steps_s)),
            )
        )
    return out
