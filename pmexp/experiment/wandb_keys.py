"""The one list of W&B key names: what `pmexp.experiment.wandb_logger` logs and what `pmexp.dashboard` plots.

    python -c "from pmexp.experiment.wandb_keys import row_keys; print(row_keys({'loss': 1}))"

The job dir's files keep their own names (`steps.jsonl`: loss, grad_norm, ...; metrics.json's
summary: peak_allocated_mb, ...); W&B gets them under a namespace per kind, so its workspace
makes one section per kind (train/, eval/, memory/, speed/, grad/, and per-layer norms in
grad_layer/, out of the way) instead of one flat "Charts" section. Why one module: a panel of the
dashboard names a key from here, never a retyped string, and a test checks that the trainer logs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "EVAL_KEYS",
    "GRAD_LAYER",
    "GRAD_NORM",
    "MEMORY_KEYS",
    "METRIC_SUMMARIES",
    "NAMESPACES",
    "REPORT_JOB_TYPE",
    "REPORT_PREFIX",
    "REPORT_VERDICTS",
    "RUN_CONFIG_KEYS",
    "SPEED_KEYS",
    "STEP",
    "STEP_KEYS",
    "SUMMARY_KEYS",
    "TRAIN_LOSS",
    "final_row_keys",
    "row_keys",
]

NAMESPACES = ("train/", "eval/", "memory/", "speed/", "grad/", "grad_layer/")
# The x axis of every chart: the optimizer step (define_metric step_metric), logged in every row.
STEP = "train/step"
TRAIN_LOSS = "train/loss"
GRAD_NORM = "grad/norm"
GRAD_LAYER = "grad_layer/"  # + the parameter's layer name, as pmexp.experiment.metrics.grad_norms names it

# steps.jsonl name -> W&B key, for each optimizer step's row.
STEP_KEYS: dict[str, str] = {
    "step": STEP, "loss": TRAIN_LOSS, "lr": "train/lr", "grad_norm": GRAD_NORM,
    "step_time_ms": "speed/step_time_ms",
}
_LOCAL_LAYER_PREFIX = "grad_norm/"
# steps.jsonl name -> W&B key, for each evaluation's row.
EVAL_KEYS: dict[str, str] = {
    "epoch": "eval/epoch", "eval_loss": "eval/loss", "eval_accuracy": "eval/accuracy", "eval_f1": "eval/f1",
}
# metrics.json summary name -> W&B key, logged once at the job's last step (a history row, so
# define_metric's summaries apply and a chart can show them).
MEMORY_KEYS: dict[str, str] = {
    "peak_allocated_mb": "memory/peak_allocated_mb", "peak_reserved_mb": "memory/peak_reserved_mb",
    "peak_active_mb": "memory/peak_active_mb", "peak_allocated_mb_max": "memory/peak_allocated_mb_max",
    "peak_allocated_mb_mean": "memory/peak_allocated_mb_mean", "saved_mask_bytes": "memory/saved_mask_bytes",
    "saved_activation_bytes": "memory/saved_activation_bytes", "saved_total_bytes": "memory/saved_total_bytes",
}
SPEED_KEYS: dict[str, str] = {
    "throughput_seq_s": "speed/throughput_seq_s", "throughput_tok_s": "speed/throughput_tok_s",
    "step_time_median_ms": "speed/step_time_median_ms", "step_time_p90_ms": "speed/step_time_p90_ms",
    "wall_time_s": "speed/wall_time_s",
    # steps after the warm-up in which Dynamo compiled (a new shape): left out of seq/s, their seconds here
    "compile_steps": "speed/compile_steps", "compile_step_s": "speed/compile_step_s",
}
# The rest of the summary that is a number, also at the last step.
SUMMARY_KEYS: dict[str, str] = {
    **MEMORY_KEYS, **SPEED_KEYS,
    "steps": "train/steps", "train_loss_final": "train/loss_final", "grad_norm_final": "grad/norm_final",
    "compile_graphs": "speed/compile_graphs", "graph_breaks": "speed/graph_breaks",
}
# define_metric summaries (W&B's default is the last value): quality keeps its best and its last,
# memory its peak, losses their minimum and last.
METRIC_SUMMARIES: dict[str, str] = {
    "eval/f1": "max,last", "eval/accuracy": "max,last", "eval/loss": "min,last", TRAIN_LOSS: "min,last",
    **{key: "max" for key in MEMORY_KEYS.values() if "peak" in key},
}
# What the W&B run's config carries besides the resolved config (filled at the end of the job).
RUN_CONFIG_KEYS = ("status", "error", "env", "config_hash", "dropout_report", "memory_report", "model_info",
                   "probe", "sweep")

# The evidence report's run (`python -m pmexp.report DIR --wandb`).
REPORT_JOB_TYPE = "report"
REPORT_PREFIX = "report/"
REPORT_VERDICTS = "report/verdicts"  # a wandb.Table: criterion, variant, outcome, measured


def row_keys(row: Mapping[str, Any]) -> dict[str, Any]:
    """A steps.jsonl row (an optimizer step's or an evaluation's) under W&B names, None values left out.

    Per-layer gradient norms go to grad_layer/; a key added to the loop later still reaches W&B,
    under train/ (or eval/ for an `eval_` key).
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            continue
        if key in STEP_KEYS:
            out[STEP_KEYS[key]] = value
        elif key in EVAL_KEYS:
            out[EVAL_KEYS[key]] = value
        elif key.startswith(_LOCAL_LAYER_PREFIX):
            out[GRAD_LAYER + key[len(_LOCAL_LAYER_PREFIX):]] = value
        elif key.startswith("eval_"):
            out["eval/" + key.removeprefix("eval_")] = value
        else:
            out["train/" + key] = value
    return out


def final_row_keys(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a metrics.json summary under W&B names; settings and None values left out."""
    return {wb: summary[key] for key, wb in SUMMARY_KEYS.items()
            if isinstance(summary.get(key), (int, float)) and not isinstance(summary.get(key), bool)}
