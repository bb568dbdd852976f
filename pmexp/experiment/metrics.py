"""What a run measures: peak memory, step times and throughput, gradient norms, accuracy and F1.

Units are fixed by the key names: `_mb` is MiB (2**20 bytes), `_ms` milliseconds, `_s` per second.
Formatting for logs is left to the caller; these functions return flat dicts of numbers.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch.distributed.tensor import DTensor

__all__ = [
    "ACCURACY_F1_MODULE",
    "StepTimer",
    "classification_metrics",
    "grad_norms",
    "layer_of",
    "peak_memory",
    "reset_peak_memory",
    "sync",
]

MIB = 2**20
ACCURACY_F1_MODULE = Path(__file__).resolve().parent / "metric_modules" / "accuracy_f1" / "accuracy_f1.py"
# Parameter names up to a numbered block: bert.encoder.layer.3, transformer.h.11, vit.encoder.layer.0
_LAYER = re.compile(r"^(.*?\.(?:layer|layers|h|blocks|block)\.\d+)\.")


def sync(device: torch.device) -> None:
    """Wait for queued kernels, so a host timer measures the GPU's work (a CPU-GPU sync point)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak-memory counters from the memory in use now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """Peak allocated / reserved / active CUDA memory since the last reset, in MiB; None off CUDA."""
    if device.type != "cuda":
        return {"peak_allocated_mb": None, "peak_reserved_mb": None, "peak_active_mb": None}
    stats = torch.cuda.memory_stats(device)
    return {
        "peak_allocated_mb": stats.get("allocated_bytes.all.peak", 0) / MIB,
        "peak_reserved_mb": stats.get("reserved_bytes.all.peak", 0) / MIB,
        "peak_active_mb": stats.get("active_bytes.all.peak", 0) / MIB,
    }


class StepTimer:
    """Per-optimizer-step wall times, samples and tokens; statistics leave out the first steps.

    The first `warmup` steps (allocator growth, lazy initialisation, compilation) are excluded from
    throughput and step-time statistics; if a run has no more steps than that, only its first step
    is left out (or none for a single-step run), so short runs still report numbers. A later step in
    which Dynamo compiled (``compiled=True``: a new shape, e.g. an epoch's short last batch, costs a
    compile and, under reduce-overhead, a CUDA-graph recording: seconds where a step takes ms) is left
    out too and counted in ``compile_steps`` / ``compile_step_s``, unless no other timed step is left.
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times_s: list[float] = []
        self.samples: list[int] = []
        self.tokens: list[int] = []
        self.compiled: list[bool] = []

    def add(self, seconds: float, samples: int, tokens: int, compiled: bool = False) -> None:
        self.times_s.append(seconds)
        self.samples.append(samples)
        self.tokens.append(tokens)
        self.compiled.append(compiled)

    def _skip(self) -> int:
        n = len(self.times_s)
        return self.warmup if n > self.warmup else min(1, max(n - 1, 0))

    def _split(self) -> tuple[list[int], list[int]]:
        """(timed, left out): the steps after the warm-up that the statistics use, and those left out
        because Dynamo compiled in them (none left out where no other step would remain)."""
        after_warmup = range(self._skip(), len(self.times_s))
        timed = [i for i in after_warmup if not self.compiled[i]]
        if not timed:
            return list(after_warmup), []
        return timed, [i for i in after_warmup if self.compiled[i]]

    def _sums(self, timed: list[int]) -> tuple[int, int, float]:
        return (sum(self.samples[i] for i in timed), sum(self.tokens[i] for i in timed),
                sum(self.times_s[i] for i in timed))

    def totals(self) -> tuple[int, int, float]:
        """(samples, tokens, seconds) of the timed steps (warm-up left out), e.g. to sum over processes."""
        return self._sums(self._split()[0])

    def summary(self) -> dict[str, float | None]:
        n = len(self.times_s)
        if n == 0:
            return {"throughput_seq_s": None, "throughput_tok_s": None,
                    "step_time_median_ms": None, "step_time_p90_ms": None}
        timed, left_out = self._split()
        samples, tokens, total = self._sums(timed)
        ms = sorted(self.times_s[i] * 1000 for i in timed)
        p90 = ms[min(len(ms) - 1, max(0, round(0.9 * len(ms) + 0.5) - 1))]  # nearest-rank percentile
        return {
            "throughput_seq_s": samples / total if total > 0 else None,
            "throughput_tok_s": tokens / total if total > 0 else None,
            "step_time_median_ms": statistics.median(ms),
            "step_time_p90_ms": p90,
            "compile_steps": len(left_out),
            "compile_step_s": sum(self.times_s[i] for i in left_out),
        }


def layer_of(param_name: str) -> str:
    """Group a parameter under its numbered block, else under its first two name parts."""
    match = _LAYER.match(param_name)
    if match:
        return match.group(1)
    parts = param_name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


@torch.no_grad()
def grad_norms(named_parameters: Iterable[tuple[str, torch.nn.Parameter]]) -> tuple[float, dict[str, float]]:
    """Global and per-layer L2 norms of the current gradients (one CPU-GPU sync).

    Gradients sharded as DTensors (FSDP2, trainer.strategy=zero2|zero3) count each rank's shard and
    sum the squares over the ranks (one all-reduce): every rank gets the norms of the whole gradient.

    Returns:
        (global norm, {"grad_norm/<layer>": norm}); layers as `layer_of` groups them.
    """
    names, grads, sharded = [], [], False
    for name, p in named_parameters:
        if p.grad is not None:
            names.append(layer_of(name))
            sharded = sharded or isinstance(p.grad, DTensor)
            grads.append(p.grad.to_local() if isinstance(p.grad, DTensor) else p.grad)
    if not grads:
        return 0.0, {}
    norms = torch._foreach_norm(grads)  # one kernel per dtype/device group, not one per tensor
    squares = torch.stack([n.float() for n in norms]) ** 2
    if sharded:  # FSDP2 shards every parameter along dim 0 (Shard(0)): each element lives on one rank
        torch.distributed.all_reduce(squares)
    values = squares.tolist()
    per_layer: dict[str, float] = defaultdict(float)
    for name, sq in zip(names, values, strict=True):
        per_layer[name] += sq
    total = sum(values) ** 0.5
    return total, {f"grad_norm/{k}": v**0.5 for k, v in per_layer.items()}


_METRIC: Any = None


def classification_metrics(predictions: list[int], references: list[int], num_labels: int) -> dict[str, float]:
    """Accuracy and F1 through the `evaluate` module shipped in pmexp (loaded once, offline).

    Raises:
        ValueError: predictions and references differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references: pass one per example")
    global _METRIC
    if _METRIC is None:
        import evaluate  # slow import (~10 s): only runs that evaluate a classifier pay it

        _METRIC = evaluate.load(str(ACCURACY_F1_MODULE))
    return _METRIC.compute(predictions=predictions, references=references, num_labels=num_labels)
