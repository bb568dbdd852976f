"""Lockstep reference: a second copy of the model, trained with standard dropout on the same batches.

    python -m pmexp.train dropout=packed_exact trainer.reference=standard trainer.max_steps=20
    python -m pmexp.train dropout=packed trainer.reference=standard_reseed   # the noise floor's partner

`trainer.reference=standard` copies the model right after it is built (same initial weights, the
model's own `nn.Dropout`s, before any dropout surgery), feeds it every micro-batch the trained model
gets, and steps it with its own AdamW at the trained model's learning rate and clipping. Before each
micro-batch the reference runs first from the global RNG state, which is then restored, so the
trained model draws exactly what it would draw without a reference: an exact variant
(`packed_exact`) draws the same masks as standard and its update equals the reference's bit for bit
(cosine exactly 1). `standard_reseed` gives the reference its own RNG stream (seed + RESEED_OFFSET):
the cosine of two standard-dropout runs that differ only in their masks is the noise floor a variant
is judged against (`packed`, `seeded` draw other masks by design).

Each optimizer step adds to steps.jsonl `ref/update_cos` (cosine of the two parameter updates, all
parameters as one vector), `ref/update_norm_ratio` (|update| / |reference update|), `ref/loss_diff`
(loss - reference loss) and `ref/update_cos/<layer>`; the summary gets their means and extremes.
Cost: a second model, its AdamW state and a copy of the parameters per model (about 4x the
parameter bytes more), and a second forward and backward per micro-batch.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import torch

from pmexp.experiment.metrics import layer_of
from pmexp.experiment.optim import weight_decay_groups

__all__ = ["REFERENCES", "RESEED_OFFSET", "Reference", "start_reference", "update_similarity"]

#: `trainer.reference` values: no reference, standard dropout drawing the trained model's masks'
#: RNG stream, standard dropout on a stream of its own.
REFERENCES = (None, "standard", "standard_reseed")
#: The reseeded reference's RNG stream starts at `seed + RESEED_OFFSET` (any seed the sweep does not use).
RESEED_OFFSET = 1_000_003

_RngState = tuple[torch.Tensor, torch.Tensor | None]


def _get_rng(device: torch.device) -> _RngState:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng(device: torch.device, state: _RngState) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@torch.no_grad()
def update_similarity(
    named_updates: Iterable[tuple[str, torch.Tensor, torch.Tensor]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Cosine and norm ratio of two updates, over all parameters and per layer (one CPU-GPU sync).

    Args:
        named_updates: (parameter name, update a, update b) per parameter.

    Returns:
        ({"cos", "norm_ratio", "max_abs_diff"}, {layer: cos}); the cosine of two bitwise-equal
        updates is exactly 1.0 (computed, dot / (|a| |b|) can round 1 ulp off). Where neither moved
        (a step at lr 0, the first of a warm-up) there is no direction to compare: cos and norm ratio
        are None, and the summary's means skip that step; one zero update against a non-zero one has
        cosine 0.0.
    """
    names, rows = [], []
    for name, a, b in named_updates:
        a64, b64 = a.double().flatten(), b.double().flatten()  # float64 sums: no rounding worth a mention
        rows.append(torch.stack([a64 @ b64, a64 @ a64, b64 @ b64, (a64 - b64).abs().max()]))
        names.append(layer_of(name))
    values = torch.stack(rows).tolist()  # the one sync
    # [dot, |a|^2, |b|^2, max |a - b|] per layer and over all parameters
    per_layer: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    total = [0.0, 0.0, 0.0, 0.0]
    for name, (dot, aa, bb, diff) in zip(names, values, strict=True):
        for acc in (per_layer[name], total):
            acc[0], acc[1], acc[2], acc[3] = acc[0] + dot, acc[1] + aa, acc[2] + bb, max(acc[3], diff)

    def cos(dot: float, aa: float, bb: float, diff: float) -> float | None:
        if aa == 0.0 and bb == 0.0:  # neither moved: no direction
            return None
        if diff == 0.0:  # every element equal (float64 holds a float32/bf16 difference exactly)
            return 1.0
        return dot / math.sqrt(aa * bb) if aa > 0 and bb > 0 else 0.0

    glob = {"cos": cos(*total), "norm_ratio": math.sqrt(total[1] / total[2]) if total[2] > 0 else None,
            "max_abs_diff": total[3]}
    return glob, {k: cos(*v) for k, v in per_layer.items()}


class Reference:
    """The reference copy, its optimizer and RNG stream; `micro_step` and `step` are the trainer's hooks."""

    def __init__(self, mode: str, model: torch.nn.Module, device: torch.device, seed: int,
                 weight_decay: float, max_grad_norm: float | None, grad_accum: int, autocast: Callable) -> None:
        self.mode, self.device = mode, device
        self.model = copy.deepcopy(model).to(device)  # the model's own dropout, its initial weights
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(weight_decay_groups(self.params, weight_decay), lr=0.0,
                                           fused=device.type == "cuda")
        self.max_grad_norm, self.grad_accum, self.autocast = max_grad_norm, grad_accum, autocast
        self.rng: _RngState | None = None
        if mode == "standard_reseed":
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed + RESEED_OFFSET)
                self.rng = _get_rng(device)
        self.loss_sum: torch.Tensor | float = 0.0
        self.main_before: list[torch.Tensor] | None = None
        self.history: dict[str, list[float]] = defaultdict(list)

    def micro_step(self, batch: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
        """Forward and backward of the reference on `batch`, leaving the global RNG state as it found it.

        Call it before the trained model's forward on the same batch: that model then draws from
        the state the reference started from (`standard`), or the reference draws from its own
        stream (`standard_reseed`).
        """
        if self.main_before is None:  # the trained model's parameters before its first update
            self.main_before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if self.rng is not None:
                _set_rng(self.device, self.rng)
            with self.autocast():
                loss = self.model(**batch).loss / self.grad_accum
            loss.backward()
            if self.rng is not None:
                self.rng = _get_rng(self.device)
        self.loss_sum += loss.detach().float()  # float32 sums as the trainer's, so equal losses give diff 0

    def step(self, model: torch.nn.Module, lr: float, loss: float) -> dict[str, float]:
        """Step the reference at `lr` and compare the trained model's update with its own.

        Args:
            model: the trained model, just after its optimizer step.
            lr: the learning rate the trained model's step used.
            loss: the trained model's loss of this step (its micro-batches' mean).

        Returns:
            The `ref/...` keys for this step's steps.jsonl row.
        """
        before = [p.detach().clone() for p in self.params]
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        trained = [p for p in model.parameters() if p.requires_grad]
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        assert self.main_before is not None, "micro_step runs before step"
        updates = [(n, p.detach() - b, r.detach() - rb)
                   for n, p, b, r, rb in zip(names, trained, self.main_before, self.params, before, strict=True)]
        glob, per_layer = update_similarity(updates)
        self.main_before = [p.detach().clone() for p in trained]
        row = {"ref/update_cos": glob["cos"], "ref/update_norm_ratio": glob["norm_ratio"],
               "ref/loss_diff": loss - float(self.loss_sum), "ref/update_max_abs_diff": glob["max_abs_diff"],
               **{f"ref/update_cos/{k}": v for k, v in per_layer.items()}}
        self.loss_sum = 0.0
        for key in ("ref/update_cos", "ref/update_norm_ratio", "ref/loss_diff"):
            if row[key] is not None:
                self.history[key].append(row[key])
        return row

    def summary(self) -> dict[str, Any]:
        """Summary keys: the mode, mean and min cosine, mean norm ratio, mean and max |loss diff|."""
        cos, ratio = self.history["ref/update_cos"], self.history["ref/update_norm_ratio"]
        diff = [abs(x) for x in self.history["ref/loss_diff"]]
        return {"reference": self.mode, "ref_update_cos_mean": _mean(cos), "ref_update_cos_min": min(cos, default=None),
                "ref_update_norm_ratio_mean": _mean(ratio), "ref_loss_diff_abs_mean": _mean(diff),
                "ref_loss_diff_abs_max": max(diff, default=None)}


def start_reference(cfg: Any, model: torch.nn.Module, device: torch.device,
                    autocast: Callable[[], Any]) -> Reference | None:
    """The reference `cfg.trainer.reference` asks for (None: none); call it before the dropout surgery.

    Args:
        cfg: the validated config.
        model: the model as built, still with its own `nn.Dropout`s, on any device.
        device: where the run trains.
        autocast: the trained model's `with autocast():` (the reference computes in the same precision).
    """
    t = cfg.trainer
    if t.reference is None:
        return None
    return Reference(t.reference, model, device, cfg.seed, t.weight_decay, t.max_grad_norm, t.grad_accum, autocast)
