"""Plots of the sweep: peak memory and throughput against seq_len, and loss curves.

Why ``Figure`` rather than ``pyplot``: no global figure state, nothing to close, and it
renders with the Agg canvas on machines without a display.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pmexp.report import fmt
from pmexp.report.gather import GROUP_KEYS, comparable, read_steps, variant_order
from pmexp.report.stats import Group, split_groups

__all__ = ["PANEL_KEYS", "REFERENCE_CURVES", "Plot", "plot_loss_curves", "plot_reference_curves", "plot_vs_seq_len"]

#: One figure per combination of these; lines within a figure are variants (and whatever else varies).
PANEL_KEYS: tuple[str, ...] = ("model", "precision", "attention")
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#7f7f7f", "#8c564b", "#e377c2")

Plot = tuple[Path, str]
"""A written PNG and its caption."""


def _slug(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "__".join(str(p) for p in parts)).strip("-")


def _color(variant: str) -> str:
    return _COLORS[variant_order(variant)[0] % len(_COLORS)]


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    return path


def _line_keys(groups: Sequence[Group], exclude: Sequence[str]) -> list[str]:
    """Settings that tell lines apart inside one figure: the variant and anything else that varies."""
    return [
        k for k in GROUP_KEYS
        if k not in exclude and (k == "variant" or len({repr(g.settings[k]) for g in groups}) > 1)
    ]


def plot_vs_seq_len(
    groups: Sequence[Group], metric: str, ylabel: str, out_dir: Path, stem: str
) -> list[Plot]:
    """Mean ± std of ``metric`` over ok seeds against seq_len, one line per variant.

    Configurations none of whose seeds finished are marked with an ``x`` on the x axis at their
    seq_len, so an OOM is visible rather than a line that just stops.
    """
    usable = [g for g in groups if g.settings.get("seq_len") is not None]
    plots: list[Plot] = []
    for panel, members in split_groups(usable, PANEL_KEYS).items():
        keys = _line_keys(members, (*PANEL_KEYS, "seq_len"))
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        seq_lens: set[int] = set()
        drawn = False
        for line, lgroups in split_groups(members, keys).items():
            lgroups.sort(key=lambda g: g.settings["seq_len"])
            variant = str(dict(zip(keys, line, strict=True))["variant"])
            color, label = _color(variant), " ".join(str(v) for v in line)
            ok = [(g.settings["seq_len"], g.stat(metric)) for g in lgroups if g.ok]
            ok = [(x, s) for x, s in ok if s.mean is not None]
            drawn = drawn or bool(ok) or any(not g.ok for g in lgroups)
            if ok:
                ax.errorbar([x for x, _ in ok], [s.mean for _, s in ok],
                            yerr=[s.std or 0.0 for _, s in ok], marker="o", capsize=3,
                            color=color, label=label)
            labelled: set[str] = set()
            for g in lgroups:
                seq_lens.add(g.settings["seq_len"])
                if not g.ok:
                    text = f"{label}: {g.label}"
                    ax.plot(g.settings["seq_len"], 0.0, marker="x", markersize=10, color=color,
                            transform=ax.get_xaxis_transform(), clip_on=False, linestyle="none",
                            label=None if text in labelled else text)
                    labelled.add(text)
        if not drawn:  # e.g. peak memory on a CPU: nothing measured, no empty figure
            continue
        if len(seq_lens) > 1 and max(seq_lens) / max(min(seq_lens), 1) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(seq_lens), [str(s) for s in sorted(seq_lens)])
        ax.set_xlabel("seq_len")
        ax.set_ylabel(ylabel)
        title = " / ".join(str(p) for p in panel)
        ax.set_title(f"{ylabel} vs seq_len: {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        path = _save(fig, out_dir / f"{_slug(stem, *panel)}.png")
        plots.append((path, f"{ylabel} vs seq_len ({title}); x on the axis: no seed finished"))
    return plots


def _curves(group: Group, key: str = "loss", keep: Callable[[dict], bool] = lambda t: True,
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(steps, values) of ``key`` per ok seed, from each job's steps.jsonl lines that ``keep`` keeps;
    seeds without it left out."""
    curves = []
    for row in group.rows:
        if row["status"] != "ok":
            continue
        train, _ = read_steps(row["job_dir"])
        points = sorted((int(t["step"]), float(t[key])) for t in train if t.get(key) is not None and keep(t))
        if points:
            steps, losses = zip(*points, strict=True)
            curves.append((np.asarray(steps), np.asarray(losses)))
    return curves


def plot_loss_curves(groups: Sequence[Group], out_dir: Path) -> list[Plot]:
    """Training loss per step: thin line per seed, bold mean over seeds, one colour per variant.

    One figure per configuration-without-variant; only ok jobs with a ``steps.jsonl`` appear.
    """
    outer = [k for k in GROUP_KEYS if k != "variant"]
    plots: list[Plot] = []
    for config, members in split_groups(groups, outer).items():
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        drawn = False
        for g in sorted(members, key=lambda g: variant_order(g.variant)):
            curves = _curves(g)
            if not curves:
                continue
            color = _color(g.variant)
            for steps, losses in curves:
                ax.plot(steps, losses, color=color, alpha=0.25, linewidth=0.8)
            common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves)))
            if common:
                mean = np.mean([loss[np.searchsorted(s, common)] for s, loss in curves], axis=0)
                ax.plot(common, mean, color=color, linewidth=2, label=f"{g.variant} ({len(curves)} seeds)")
            drawn = True
        if not drawn:
            continue
        title = fmt.config_label(dict(zip(outer, config, strict=True)))
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"training loss: {title}", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        path = _save(fig, out_dir / f"{_slug('loss', *config)}.png")
        plots.append((path, f"training loss, seeds thin and mean bold: {title}"))
    return plots


#: steps.jsonl keys of a lockstep reference run (pmexp.experiment.reference) and their axis labels.
REFERENCE_CURVES: tuple[tuple[str, str], ...] = (
    ("ref/update_cos", "cosine of the updates"),
    ("ref/update_norm_ratio", "|update| / |reference update|"),
    ("ref/loss_diff", "loss - reference loss"),
)


def plot_reference_curves(groups: Sequence[Group], out_dir: Path) -> list[Plot]:
    """Per step, each variant against its lockstep reference: update cosine, norm ratio, loss difference.

    One figure per configuration without variant and reference; a line per (variant, reference), mean
    over seeds. ``standard`` against ``standard_reseed`` is the noise floor: two standard-dropout runs
    that differ only in their masks. Only jobs whose steps.jsonl holds ``ref/update_cos`` appear.
    """
    outer = [k for k in GROUP_KEYS if k not in ("variant", "reference")]
    plots: list[Plot] = []
    for config, members in split_groups(groups, outer).items():
        lines = [(g, {key: _curves(g, key, comparable if key != "ref/loss_diff" else lambda t: True)
                      for key, _ in REFERENCE_CURVES}) for g in members
                 if g.settings.get("reference")]
        lines = [(g, c) for g, c in lines if c["ref/update_cos"]]
        if not lines:
            continue
        fig = Figure(figsize=(8, 9))
        axes = [fig.add_subplot(len(REFERENCE_CURVES), 1, i + 1) for i in range(len(REFERENCE_CURVES))]
        for g, curves in sorted(lines, key=lambda gc: (variant_order(gc[0].variant), str(gc[0].settings["reference"]))):
            floor = g.variant == "standard" and g.settings["reference"] == "standard_reseed"
            label = f"{g.variant} vs {g.settings['reference']}" + (" (noise floor)" if floor else "")
            for ax, (key, ylabel) in zip(axes, REFERENCE_CURVES, strict=True):
                seeds = curves[key]
                if not seeds:
                    continue
                common = sorted(set.intersection(*(set(s.tolist()) for s, _ in seeds)))
                mean = np.mean([v[np.searchsorted(s, common)] for s, v in seeds], axis=0)
                ax.plot(common, mean, color=_color(g.variant), linestyle="--" if floor else "-", linewidth=1.5,
                        label=f"{label} ({len(seeds)} seeds)")
                ax.set_ylabel(ylabel)
        title = fmt.config_label(dict(zip(outer, config, strict=True)))
        axes[0].set_title(f"against the lockstep reference: {title}", fontsize="small")
        axes[-1].set_xlabel("step")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize="small")
        path = _save(fig, out_dir / f"{_slug('reference', *config)}.png")
        plots.append((path, f"update cosine, norm ratio and loss difference against the lockstep reference, mean "
                            f"over seeds; dashed: standard vs a reseeded standard, the noise floor: {title}"))
    return plots
