"""Eager attention's ``torch.matmul(dropout(probs), value)`` without keeping the dropped probabilities.

    python -m pytest -q tests/test_attention_matmul.py

Stock eager attention keeps three tensors of the probabilities' size for backward: softmax's output
(its own backward needs it), the dropout's mask, and matmul's copy of the dropped probabilities
(value's gradient needs it). PM-Drop shrinks the mask to bits; this drops the third: the matmul's
autograd node keeps ``probs`` (already kept by softmax: the same tensor, no new memory) and asks the
dropout's own node to rebuild ``probs * mask * scale`` in backward, one elementwise pass. Under bf16
autocast that is 4 + 1/8 bytes a probability instead of packed's 4 + 1/8 + 2 (stock: 4 + 1 + 2).

On CUDA, ``packed`` and ``seeded`` under autocast take :mod:`pmexp.dropout.masked_matmul` instead:
the matmul keeps the mask itself and rebuilds its operand with one kernel that folds autocast's cast
(H200: 1.02-1.07x of standard's step, above unfused). Without autocast that rebuild is an extra
pass, and below ``masked_matmul.MIN_PROBABILITIES`` a call the fused path's host cost is not hidden,
so they stay unfused there (:func:`may_fuse`; runs/2026-11-30-fuse-policy). Other CUDA dropouts
(``packed_exact``) stay unfused too: the general path here runs ~34 bytes a probability of extra
elementwise traffic in backward, 0.84-0.89x of unfused steps on the H200
(runs/2026-11-30-attention-matmul/general_path). On the CPU it runs, for the memory (and so CPU
tests see GPU's saved tensors), at ~4% of a step: 0.96x of unfused for a 6-layer, 384-wide BERT,
seq 128, batch 16, 2 threads (torch 2.13 CPU, five interleaved rounds, 0.93-0.97x).

Where it applies: the rebound eager attention function of :mod:`pmexp.dropout.surgery` (eager mode
only), when the dropout's output goes straight into ``torch.matmul`` with an operand of the same
batch shape. The dropped probabilities handed back to the caller (``output_attentions``) keep
their own gradient path: if they reach the loss too, their share is added (equal to the unfused
gradient up to the order of one addition), or, where autograd ran and freed the dropout's node
first, backward raises; never a silent wrong gradient. Gradients are otherwise the unfused ones bit
for bit, and ``packed_exact`` stays torch's dropout (tests/test_attention_matmul.py).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from pmexp.dropout import masked_matmul
from pmexp.dropout.functional import _uses_kernel, dropout

__all__ = ["AttentionShims", "fusing", "may_fuse", "takes_kernel_path", "unfused"]

_FUSE = [True]  # read at each attention call: `unfused()` turns it off for an A/B comparison in one process


def fusing() -> bool:
    """Whether rebound eager attention fuses its dropout into the next matmul now (default True)."""
    return _FUSE[0]


def may_fuse(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether an attention call on ``query`` (batch, heads, q, d) and ``key`` (..., k, d) can fuse now:
    off CUDA always (the general path); on CUDA under autocast, for ``masked_matmul.MIN_PROBABILITIES``
    or more probabilities (:func:`pmexp.dropout.masked_matmul.applies` decides for the tensor itself).
    Read per call so an unfused CUDA call skips the shims' host cost (three Python frames a call)."""
    if not query.is_cuda:
        return True
    if not torch.is_autocast_enabled("cuda") or query.dim() < 2 or key.dim() < 2:
        return False
    probabilities = query.numel() // max(query.shape[-1], 1) * key.shape[-2]  # batch x heads x q x k
    return probabilities >= masked_matmul.MIN_PROBABILITIES


def takes_kernel_path(variant: str, query: torch.Tensor, key: torch.Tensor, p: float) -> bool:
    """Whether an eager attention call's dropout will take :mod:`pmexp.dropout.masked_matmul`'s kernel path
    (the matmul keeps softmax's output and the mask, no dropped copy): :func:`may_fuse` on CUDA plus
    :func:`pmexp.dropout.masked_matmul.applies`' checks, read from ``query`` and ``key`` before the
    probabilities exist (softmax under autocast gives float32 ones). Tempo's attention hands such calls
    over (:func:`pmexp.tempo.attention.tempo_attention`)."""
    return (variant in masked_matmul.VARIANTS and query.is_cuda and 0.0 < p < 1.0 and fusing()
            and may_fuse(query, key) and torch.get_autocast_dtype("cuda") != torch.float32
            and not torch.compiler.is_compiling() and _uses_kernel(query))


@contextlib.contextmanager
def unfused() -> Iterator[None]:
    """Attention calls inside run dropout and matmul unfused (stock matmul keeping its operand).

    Wrap backward too where layers are checkpointed: their forward is recomputed there and must
    take the same path as the first time."""
    previous, _FUSE[0] = _FUSE[0], False
    try:
        yield
    finally:
        _FUSE[0] = previous


def _node_anchor(dropped: torch.Tensor) -> torch.Tensor:
    """A one-element tensor whose graph reaches ``dropped``'s node (the general path's dropouts are
    Python Functions): on torch 2.11 such a node dies with its last output tensor and frees its saved
    tensors (backward then raised; the H200's tests caught it). Two host ops and a 1-element copy."""
    return dropped.as_strided((1,), (1,)).clone()


def _run_node(node: Any, grad: torch.Tensor) -> torch.Tensor:
    """Apply a dropout's autograd node (a Python Function's) to ``grad``: x -> ``x * mask * scale``."""
    return node.apply(grad)[0]


class _DroppedMatmul(torch.autograd.Function):
    """``dropped @ value`` that keeps ``probs`` and the dropout's node instead of ``dropped``."""

    @staticmethod
    def forward(ctx, probs: torch.Tensor, value: torch.Tensor, dropped: torch.Tensor,
                node_and_anchor: tuple[Any, torch.Tensor]) -> torch.Tensor:
        # node and anchor come in a tuple: apply() makes every tensor argument an input, and an input
        # anchor would put the dropout's node in backward's graph (run twice, by us and the engine).
        out = torch.matmul(dropped, value)  # autocast, if on, casts here exactly as for the stock matmul
        (ctx.node, ctx.anchor), ctx.dropped_dtype = node_and_anchor, dropped.dtype
        ctx.save_for_backward(probs, value)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        probs, value = ctx.saved_tensors
        # The dropout's node runs once (under activation checkpointing its saved tensors unpack only
        # once): on ones it gives mask * scale, which then rebuilds the operand and masks the gradient,
        # each product rounded as the node's own (x * 1 * scale is x * scale).
        keep_scale = _run_node(ctx.node, torch.ones_like(probs))
        ctx.node = ctx.anchor = None  # the dropout's node and its saved mask go now, not with the graph
        grad_probs = grad_value = None
        if ctx.needs_input_grad[1]:  # the stock matmul's operand: the dropped probabilities in its dtype
            dropped = (probs.detach() * keep_scale).to(grad.dtype)
            grad_value = torch.matmul(dropped.transpose(-1, -2), grad).to(value.dtype)
        if ctx.needs_input_grad[0]:
            grad_dropped = torch.matmul(grad, value.to(grad.dtype).transpose(-1, -2)).to(ctx.dropped_dtype)
            grad_probs = grad_dropped * keep_scale
        return grad_probs, grad_value, None, None


def _dropped_matmul(probs: torch.Tensor, value: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    return _DroppedMatmul.apply(probs, value, dropped.detach(), (dropped.grad_fn, _node_anchor(dropped)))


def _fusable(dropped: torch.Tensor, value: Any) -> bool:
    return (isinstance(value, torch.Tensor) and dropped.dim() == value.dim() >= 3
            and dropped.shape[:-2] == value.shape[:-2] and dropped.grad_fn is not None)


class AttentionShims:
    """``F.dropout`` and ``torch.matmul`` for one rebound attention function: a dropout's output that
    goes straight into the next matmul is fused (the matmul keeps no copy of it); every other call is plain.

    Between a dropout and the matmul after it, holds the dropout's output by weak reference (it must
    die after the matmul) and its input by strong reference (the caller has usually dropped its name
    for it already; softmax's node keeps its data, not the Python tensor). The next matmul or
    dropout call lets go of both, or :meth:`release` at the end of the attention call.
    """

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self._pending: tuple[weakref.ref, torch.Tensor] | None = None

    def dropout(self, input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
        if training and type(p) is float and torch.is_grad_enabled() and masked_matmul.applies(input, self.variant, p):
            out = masked_matmul.masked_dropout(input, p, self.variant)  # CUDA: the matmul keeps its mask
        else:
            out = dropout(input, p, training, self.variant)
        # CUDA without the kernel path (packed_exact, or no triton): the general path's extra passes
        # cost 11-16% of an H200 step (runs/2026-11-30-attention-matmul), too much for its memory.
        # Off CUDA it replays the variant's Python Function node (p = 1 is torch's zeros: not fused).
        fusable = out is not input and torch.is_grad_enabled() and (
            masked_matmul.is_masked(out) or (not input.is_cuda and hasattr(out.grad_fn, "_forward_cls")))
        self._pending = (weakref.ref(out), input) if fusable else None
        return out

    def release(self) -> None:
        """Let go of a pending dropout's tensors (its output went somewhere other than a matmul)."""
        self._pending = None

    def matmul(self, a: Any, b: Any, **kwargs: Any) -> torch.Tensor:
        pending, self._pending = self._pending, None
        if pending is None or kwargs or a is not pending[0]() or not torch.is_grad_enabled() or not _fusable(a, b):
            return torch.matmul(a, b, **kwargs)
        if masked_matmul.is_masked(a):
            return masked_matmul.masked_matmul(pending[1], b, a)
        return _dropped_matmul(pending[1], b, a)
