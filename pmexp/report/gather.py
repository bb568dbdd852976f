"""Collect job records (``metrics.json``) and max-batch results from sweep directories.

Why a module of its own: everything downstream (tables, statistics, plots, verdicts) works on
the flat rows built here, so the on-disk schema is interpreted in exactly one place. Rows are
built from each record's ``summary`` (plus ``status``); the resolved ``config`` is only a
fallback for settings the summary left null (a job that died before writing its summary).
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmexp.experiment.records import MAXBATCH_FILE, PROBES_FILE, RECORD_FILE, STATUSES, STEPS_FILE
from pmexp.experiment.settings import (
    MEMORY_TECHNIQUES,
    SETTING_KEYS,
    normalise_setting,
    select_config,
    settings_of,
    with_defaults,
)
from pmexp.experiment.variants import PMDROP_OPTIONS, option_order

__all__ = [
    "MAXBATCH_FILE",
    "MEMORY_TECHNIQUES",
    "PROBES_FILE",
    "GROUP_KEYS",
    "PMDROP_VARIANTS",
    "SETTING_KEYS",
    "EmptySweepError",
    "MaxBatchResult",
    "Row",
    "SweepNotFoundError",
    "gather_maxbatch",
    "gather_rows",
    "memory_order",
    "read_steps",
    "settings_of",
    "timed_step_times",
    "variant_order",
]

#: A "configuration" is every setting except the seed (its jobs are the seed repeats) and
#: ``checkpointing``, which ``memory`` names (see :func:`settings_of`).
GROUP_KEYS: tuple[str, ...] = tuple(k for k in SETTING_KEYS if k not in ("seed", "checkpointing"))
#: ``trainer.timing_warmup`` of records that do not say (conf/trainer/default.yaml's value).
TIMING_WARMUP = 3
#: Variants that are PM-Drop (judged by the success criteria), from the framework's option registry.
PMDROP_VARIANTS: tuple[str, ...] = PMDROP_OPTIONS

Row = dict[str, Any]
"""One job: the summary's fields, normalised settings, ``status``, ``error``, ``job_dir`` and
``step_times_ms`` (its timed steps, warm-up left out; empty unless ok)."""


class SweepNotFoundError(FileNotFoundError):
    """A directory given to the report does not exist."""


class EmptySweepError(ValueError):
    """The given directories hold no job records at all."""


@dataclass(frozen=True)
class MaxBatchResult:
    """One ``maxbatch.json``: the largest batch (or seq_len) per variant for one config."""

    path: Path
    search: str  # "batch_size" or "seq_len": the dimension that was searched
    settings: dict[str, Any]
    results: dict[str, dict[str, Any]]  # variant -> {"max", "peak_allocated_mb", "hit_cap", ...}
    complete: bool = True
    env: dict[str, Any] = field(default_factory=dict)


def variant_order(variant: str | None) -> tuple[int, str]:
    """Sort key that puts ``standard`` first, then the PM-Drop variants, ``none``, then the rest."""
    return option_order(variant)


def memory_order(memory: str | None) -> tuple[int, str]:
    """Sort key that puts the memory techniques in :data:`MEMORY_TECHNIQUES` order, then the rest."""
    names = list(MEMORY_TECHNIQUES)
    return (names.index(memory) if memory in names else len(names)), str(memory)


def _check_dirs(dirs: Sequence[str | Path]) -> list[Path]:
    if not dirs:
        raise SweepNotFoundError(
            "no sweep directory given: pass the directory a multirun wrote, e.g. "
            "`python -m pmexp.report multirun/2025-01-31/12-00-00`"
        )
    paths = [Path(d) for d in dirs]
    for path in paths:
        if not path.is_dir():
            raise SweepNotFoundError(
                f"sweep directory {str(path)!r} does not exist or is not a directory: pass the "
                "directory a multirun wrote (it holds job dirs with metrics.json), or a "
                "max-batch --out directory"
            )
    return paths


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _row(record: Mapping[str, Any], job_dir: Path) -> Row:
    summary = record.get("summary") or {}
    row: Row = {k: _number(v) for k, v in summary.items() if k not in SETTING_KEYS}
    row.update(settings_of(record))
    status = record.get("status")
    row["status"] = status if status in STATUSES else "failed"
    row["error"] = record.get("error") or (None if status in STATUSES else f"unknown status {status!r}")
    row["job_dir"] = str(job_dir)
    row["env"] = record.get("env") or {}
    warmup = select_config(record.get("config"), ("trainer.timing_warmup",))
    steps = read_steps(job_dir)[0] if row["status"] == "ok" or summary.get("reference") else []  # read once
    row["step_times_ms"] = _step_times(steps, TIMING_WARMUP if warmup is None else int(warmup)) \
        if row["status"] == "ok" else ()
    if summary.get("reference"):
        row.update(reference_means(steps) or {})
    return row


def comparable(line: Mapping[str, Any]) -> bool:
    """A lockstep-reference step whose two updates both moved: cosine and norm ratio mean something.

    A step at lr 0 moves neither model. Records since the fix log None there; earlier ones logged
    cosine 0.0 with a NaN norm ratio (the reference's update was zero), which this also leaves out.
    """
    cos, ratio = _number(line.get("ref/update_cos")), _number(line.get("ref/update_norm_ratio"))
    return cos is not None and ratio is not None and math.isfinite(ratio)


def reference_means(train_lines: Sequence[Mapping[str, Any]]) -> dict[str, float | None] | None:
    """The summary's ref_* means recomputed from a job's steps.jsonl training lines over the comparable
    steps (see `comparable`), so records written before lr-0 steps were skipped read the same; None
    without reference lines."""
    lines = [t for t in train_lines if "ref/update_cos" in t]
    if not lines:
        return None
    moved = [t for t in lines if comparable(t)]
    cos = [float(t["ref/update_cos"]) for t in moved]
    ratio = [float(t["ref/update_norm_ratio"]) for t in moved]
    diff = [abs(d) for t in lines if (d := _number(t.get("ref/loss_diff"))) is not None]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"ref_update_cos_mean": mean(cos), "ref_update_cos_min": min(cos, default=None),
            "ref_update_norm_ratio_mean": mean(ratio), "ref_loss_diff_abs_mean": mean(diff),
            "ref_steps_compared": float(len(moved))}


def timed_step_times(job_dir: str | Path, warmup: int = 3) -> tuple[float, ...]:
    """A job's per-step wall times in ms from ``steps.jsonl``, its first ``warmup`` steps left out.

    The same rule as the trainer's ``pmexp.experiment.metrics.StepTimer``: a run of no more steps than
    ``warmup`` leaves out only its first step (none of a single-step run).
    """
    return _step_times(read_steps(job_dir)[0], warmup)


def _step_times(train_lines: Sequence[Mapping[str, Any]], warmup: int) -> tuple[float, ...]:
    times = [float(t) for item in train_lines
             if isinstance(t := item.get("step_time_ms"), (int, float)) and not isinstance(t, bool)]
    skip = warmup if len(times) > warmup else min(1, max(len(times) - 1, 0))
    return tuple(times[skip:])


def _under_maxbatch(metrics: Path, roots: Iterable[Path]) -> bool:
    """Probe runs of a max-batch search sit below its ``maxbatch.jsonl``; they are not sweep jobs."""
    for parent in metrics.parents:
        if (parent / PROBES_FILE).exists() or (parent / MAXBATCH_FILE).exists():
            return True
        if parent in roots:
            return False
    return False


def gather_rows(dirs: Sequence[str | Path]) -> list[Row]:
    """Read every ``metrics.json`` below ``dirs`` (any depth) into rows.

    Probe runs of a max-batch search are skipped: they are summarised by ``maxbatch.json``.
    A ``metrics.json`` that cannot be parsed becomes a ``failed`` row, so it is never dropped.

    Raises:
        SweepNotFoundError: a directory does not exist.
        EmptySweepError: neither a job record nor a max-batch result was found.
    """
    roots = _check_dirs(dirs)
    rows: list[Row] = []
    for root in roots:
        for metrics in sorted(root.rglob(RECORD_FILE)):
            if _under_maxbatch(metrics, roots):
                continue
            try:
                record = json.loads(metrics.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                record = {"status": "failed", "error": f"unreadable metrics.json: {exc}"}
            if not isinstance(record, dict):  # valid JSON, but `null` or a list: nothing to read
                warnings.warn(f"{metrics}: holds a JSON {type(record).__name__}, not a job record; skipped",
                              stacklevel=2)
                continue
            rows.append(_row(record, metrics.parent))
    has_maxbatch = any(next(r.rglob(MAXBATCH_FILE), None) is not None for r in roots)
    if not rows and not has_maxbatch:
        raise EmptySweepError(
            f"no metrics.json found under {', '.join(map(str, roots))}: pass a sweep directory "
            "written by `python -m pmexp.train -m ...` (its job dirs hold metrics.json), or the "
            "--out directory of `python -m pmexp.maxbatch`"
        )
    return rows


def gather_maxbatch(dirs: Sequence[str | Path]) -> list[MaxBatchResult]:
    """Read every ``maxbatch.json`` below ``dirs`` (written atomically; one that fails to parse is skipped)."""
    results: list[MaxBatchResult] = []
    for root in _check_dirs(dirs):
        for path in sorted(root.rglob(MAXBATCH_FILE)):
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            results.append(
                MaxBatchResult(
                    path=path,
                    search=str(data.get("search", "batch_size")),
                    settings=with_defaults(
                        {k: normalise_setting(k, v) for k, v in (data.get("settings") or {}).items()}
                    ),
                    results=dict(data.get("results") or {}),
                    complete=bool(data.get("complete", True)),
                    env=dict(data.get("env") or {}),
                )
            )
    return results


def read_steps(job_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training lines and eval lines of a job's ``steps.jsonl`` (or ``steps.jsonl.gz``: records
    committed to runs/ keep their step logs compressed, ~6x smaller).

    A torn last line (a killed job) is skipped rather than failing the whole report.

    Returns:
        ``(train_lines, eval_lines)``; both empty when the file is missing.
    """
    path = Path(job_dir) / STEPS_FILE
    train: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    if path.exists():
        text = path.read_text()
    elif path.with_name(path.name + ".gz").exists():
        text = gzip.decompress(path.with_name(path.name + ".gz").read_bytes()).decode()
    else:
        return train, evals
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        if "step" in item and "loss" in item:
            train.append(item)
        elif "eval_loss" in item or "eval_f1" in item:
            evals.append(item)
    return train, evals
