"""An unfused torch baseline for packed dropout, in the style of the project's seed.

A reconstruction from the seed's described behaviour, not its code: ``rand_like`` in float32,
compare, float32 arithmetic (so bf16 input gives float32 output), mask packed with torch ops.
Kept only so the benchmark can show what fusing buys.
"""

from __future__ import annotations

import torch

from pmexp.masks.bits import pack_bits_torch, unpack_bits_torch

__all__ = ["naive_packed_dropout"]


class _NaivePacked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = torch.rand_like(x, dtype=torch.float32) > p
        ctx.p, ctx.shape = p, x.shape
        ctx.save_for_backward(pack_bits_torch(keep))
        return x.float() * keep / (1 - p)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (bits,) = ctx.saved_tensors
        keep = unpack_bits_torch(bits, ctx.shape.numel()).view(ctx.shape)
        return grad * keep / (1 - ctx.p), None


def naive_packed_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Unfused packed dropout (float32 output)."""
    return _NaivePacked.apply(x, p)
