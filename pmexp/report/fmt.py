"""Number and label formatting shared by tables and verdicts.

Why: one place decides how a ratio, a percentage or a missing value reads, so the verdict
text and the tables it points to always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pmexp.experiment.records import error_line

__all__ = ["MISSING", "first_line", "compression", "config_label", "num", "pct", "pvalue", "ratio", "sigma"]

#: Shown where a value does not apply or was not measured.
MISSING = "n/a"


def num(value: float | None, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals, ``n/a`` for None."""
    return MISSING if value is None else f"{value:,.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a signed percentage: 0.052 -> '+5.2%'."""
    return MISSING if value is None else f"{value * 100:+.{digits}f}%"


def ratio(value: float | None, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}x"


def compression(value: float | None) -> str:
    """Mask compression; a variant that saves no mask bytes (seeded) reads 'inf (all)'."""
    if value is None:
        return MISSING
    return "inf (all)" if math.isinf(value) else f"{value:.2f}x"


def pvalue(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def sigma(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:+.2f}σ" if math.isfinite(value) else ("+inf σ" if value > 0 else "-inf σ")


def sigma_interval(interval: tuple[float, float] | None) -> str:
    return MISSING if interval is None else f"[{interval[0]:+.2f}, {interval[1]:+.2f}]σ"


def first_line(text: str | None, limit: int = 160) -> str:
    """The first line of an error message, cut to ``limit`` characters; '' for None (as records read it)."""
    return error_line(text, limit)


def config_label(settings: dict[str, Any], exclude: Iterable[str] = ("variant",)) -> str:
    """Compact name of a configuration: '[rte] bert_base bf16 sdpa L=512 B=32 ddp×2 compile tempo'."""
    skip = set(exclude)
    parts: list[str] = []
    if "data" not in skip and settings.get("data") not in (None, "synthetic"):
        parts.append(str(settings["data"]))  # the GLUE task
    for key in ("model", "precision", "attention"):
        if key not in skip and settings.get(key) is not None:
            parts.append(str(settings[key]))
    for key, short in (("seq_len", "L"), ("batch_size", "B")):
        if key not in skip and settings.get(key) is not None:
            parts.append(f"{short}={settings[key]}")
    if "strategy" not in skip and settings.get("strategy") not in (None, "single"):
        parts.append(f"{settings['strategy']}×{settings.get('world_size')}")
    if "compile" not in skip and settings.get("compile"):
        parts.append("compile")
    if "memory" not in skip and settings.get("memory") not in (None, "none"):
        parts.append(str(settings["memory"]))  # names checkpointing too, where it is on
    elif "checkpointing" not in skip and settings.get("checkpointing"):
        parts.append("ckpt")
    if "targets" not in skip and settings.get("targets"):
        parts.append(f"targets={settings['targets']}")
    if "fuse" not in skip and settings.get("fuse") is False:
        parts.append("unfused")  # dropout.fuse=false: the variant's mask saving alone
    if "variant" not in skip and settings.get("variant") is not None:
        parts.append(str(settings["variant"]))
    return " ".join(parts) or "(default)"
