"""CUDA ``dropout(probs) @ value`` for packed and seeded: the mask as bits (or a seed), no dropped copy.

    python -m pytest -q tests/test_attention_matmul.py     # on a CUDA machine: the kernel path too

:mod:`pmexp.dropout.attention_matmul`'s general path rebuilds matmul's operand through the dropout's
autograd node (any variant, any device), at ~34 bytes a probability of extra traffic in backward:
0.84-0.89x of unfused steps on the H200 (runs/2026-11-30-attention-matmul). On CUDA, packed and seeded
know their mask, so here the matmul's node keeps it (bits, or only the seed) beside ``probs`` and
backward runs two fused kernels: operand = probs * keep * scale written straight in the gradient's
dtype (4 + 1/8 bytes read, 2 written under bf16 autocast), and the probabilities' gradient read in
the gradient's dtype and written in theirs (the cast autocast's backward would run, folded in). That
is fewer bytes than the unfused backward's cast plus dropout backward, and the same numbers: each
value is rounded as the unfused path rounds it (x * scale in float32, then to the operand dtype).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from pmexp.dropout.functional import _bits_backward, _draw_seed, _kernels, _uses_kernel

__all__ = ["MIN_PROBABILITIES", "VARIANTS", "applies", "folds_a_cast", "is_masked", "masked_dropout", "masked_matmul"]

VARIANTS = ("packed", "seeded")  # the variants whose mask the matmul can keep
Mask = tuple[torch.Tensor | int, torch.Tensor | None]  # (seed, bits): bits None for seeded


def folds_a_cast(x: torch.Tensor) -> bool:
    """Whether autocast casts ``dropout(x)`` to a lower precision for the matmul: the cast this path's
    backward folds into its kernels, which is what makes it faster than unfused, not only smaller.
    Without one (fp32, or a model already in bf16) the rebuild is an extra pass over the probabilities
    (+8 bytes a probability in fp32): H200, MiniLM fp32 seq 128 B32, 0.985x of standard graphed and
    0.868x eager against unfused's 1.003x / 1.004x (runs/2026-11-30-attention-matmul/next)."""
    kind = x.device.type
    return torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) != x.dtype


# Below this many probabilities a call, fusing costs an H200 more than it saves, so the pair stays
# unfused (set 0 to fuse every size, for the memory). MiniLM bf16 (seq 128, B32, 12 heads: 6.3M a call):
# 0.990x of unfused's step as a CUDA graph, 0.85x eager (the fused path's two Python Functions and
# three Triton launches a layer are not hidden by so little GPU work); BERT-large S512
# B16 (67M): 1.013x graphed, 1.015x eager (runs/2026-11-30-fuse-policy, runs/2026-11-30-attention-matmul).
# The graphed break-even between the two, linearly: ~16M.
MIN_PROBABILITIES = 1 << 24


def applies(x: torch.Tensor, variant: str, p: float) -> bool:
    """Whether ``x``'s dropout fuses here: eager CUDA, packed or seeded, a kernel dtype, 0 < p < 1,
    autocast casting the dropped probabilities for the matmul (:func:`folds_a_cast`), and at least
    :data:`MIN_PROBABILITIES` of them."""
    return (variant in VARIANTS and 0.0 < p < 1.0 and x.numel() >= MIN_PROBABILITIES
            and not torch.compiler.is_compiling() and _uses_kernel(x) and folds_a_cast(x))


def _apply_mask(t: torch.Tensor, mask: Mask, p: float, out_dtype: torch.dtype) -> torch.Tensor:
    """``t * keep / (1 - p)`` computed in t's precision, stored as ``out_dtype``: one kernel."""
    seed, bits = mask
    if bits is not None:
        return _bits_backward(t, bits, p, out_dtype)  # the helper Tempo's attention rebuilds with too
    # launched directly, not through _fused_forward: under graph capture the seed is a tensor, which
    # that helper sends to the custom op, and the op has no out_dtype (a cast would follow it)
    return _kernels().forward(t, seed, p, False, out_dtype=out_dtype)[0]


class _MaskedDropout(torch.autograd.Function):
    """The variant's dropout by its Triton kernel, leaving the mask on the node (``node.mask``) for the
    matmul to keep. Its own backward runs only where the dropped tensor reaches the loss some other
    way too (attention weights handed out); the mask lives as long as that node, not longer."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, seeded: bool) -> torch.Tensor:
        seed = _draw_seed(x)  # as the variant's own path draws it: same seed, same mask
        y, bits = _kernels().forward(x, seed, p, not seeded)
        ctx.p, ctx.mask = p, (seed, None if seeded else bits)  # for the matmul's forward, read once
        ctx.int_seed = None if isinstance(seed, torch.Tensor) else seed
        # saved as well (the same storage): counted by saved-tensor accounting, checkpointing recomputes it
        ctx.save_for_backward(seed if ctx.int_seed is None else None, None if seeded else bits)
        return y

    @staticmethod
    @once_differentiable  # its backward is not differentiable again: say so rather than be wrong
    def backward(ctx, grad: torch.Tensor):
        seed, bits = ctx.saved_tensors
        return _apply_mask(grad, (ctx.int_seed if seed is None else seed, bits), ctx.p, grad.dtype), None, None


def masked_dropout(x: torch.Tensor, p: float, variant: str) -> torch.Tensor:
    """``dropout(x, p, True, variant)`` whose output :func:`masked_matmul` can fuse (see :func:`applies`)."""
    return _MaskedDropout.apply(x, p, variant == "seeded")


def is_masked(t: torch.Tensor) -> bool:
    """Whether ``t`` came from :func:`masked_dropout` (its node carries the mask)."""
    return type(t.grad_fn) is _MaskedDropout._backward_cls


class _MaskedMatmul(torch.autograd.Function):
    """``dropped @ value`` keeping ``probs`` and the mask; backward rebuilds ``dropped`` by one kernel."""

    @staticmethod
    def forward(ctx, probs: torch.Tensor, value: torch.Tensor, dropped: torch.Tensor,
                mask_and_p: tuple[Mask, float]) -> torch.Tensor:
        out = torch.matmul(dropped, value)  # autocast, if on, casts here exactly as for the stock matmul
        (seed, bits), ctx.p = mask_and_p
        ctx.dropped_dtype, ctx.packed = dropped.dtype, bits is not None
        # an int seed stays on ctx; bits (or a seed tensor, under graph capture) are saved tensors
        ctx.seed = seed if bits is None and not isinstance(seed, torch.Tensor) else None
        key = bits if bits is not None else (seed if isinstance(seed, torch.Tensor) else None)
        ctx.save_for_backward(probs, value, key)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        probs, value, key = ctx.saved_tensors
        mask = (None, key) if ctx.packed else (key if key is not None else ctx.seed, None)
        grad_probs = grad_value = None
        if ctx.needs_input_grad[1]:  # the stock matmul's operand, rebuilt in its dtype in one pass
            dropped = _apply_mask(probs.detach(), mask, ctx.p, grad.dtype)
            grad_value = torch.matmul(dropped.transpose(-1, -2), grad).to(value.dtype)
        if ctx.needs_input_grad[0]:
            grad_dropped = torch.matmul(grad, value.to(grad.dtype).transpose(-1, -2))
            grad_probs = _apply_mask(grad_dropped, mask, ctx.p, ctx.dropped_dtype)
        return grad_probs, grad_value, None, None


def masked_matmul(probs: torch.Tensor, value: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    """``torch.matmul(dropped, value)`` for ``dropped = masked_dropout(probs, ...)``, keeping ``probs``
    (softmax keeps it already) and the mask instead of ``dropped``."""
    node = dropped.grad_fn
    mask, node.mask = node.mask, None  # from here the matmul keeps it (and the dropout node its saved copy)
    return _MaskedMatmul.apply(probs, value, dropped.detach(), (mask, node.p))
