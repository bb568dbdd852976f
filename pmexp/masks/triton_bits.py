"""Triton kernels for :func:`pmexp.masks.pack_bits` / :func:`~pmexp.masks.unpack_bits` on CUDA.

One read of the bool mask and one write of the bytes (and the reverse): no int64 temporaries.
Imported only when a CUDA tensor needs it, or by tests under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["pack_bits", "unpack_bits"]

_BYTES_PER_PROGRAM = 1024


@triton.jit
def _pack_kernel(mask_ptr, out_ptr, n, n_bytes, BYTES: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BYTES + tl.arange(0, BYTES)
    cols = tl.arange(0, 8)
    idx = rows[:, None] * 8 + cols[None, :]
    bits = tl.load(mask_ptr + idx, mask=idx < n, other=0).to(tl.int32)
    byte = tl.sum(bits << cols[None, :], axis=1)
    tl.store(out_ptr + rows, byte.to(tl.uint8), mask=rows < n_bytes)


@triton.jit
def _unpack_kernel(packed_ptr, out_ptr, n, n_bytes, BYTES: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BYTES + tl.arange(0, BYTES)
    cols = tl.arange(0, 8)
    byte = tl.load(packed_ptr + rows, mask=rows < n_bytes, other=0).to(tl.int32)
    bits = (byte[:, None] >> cols[None, :]) & 1
    idx = rows[:, None] * 8 + cols[None, :]
    tl.store(out_ptr + idx, bits.to(tl.uint8), mask=idx < n)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Triton :func:`pmexp.masks.pack_bits` (bool tensor -> 1-D uint8)."""
    flat = mask.reshape(-1).contiguous().view(torch.uint8)
    n = flat.numel()
    n_bytes = (n + 7) // 8
    out = torch.empty(n_bytes, dtype=torch.uint8, device=mask.device)
    if n:
        grid = (triton.cdiv(n_bytes, _BYTES_PER_PROGRAM),)
        _pack_kernel[grid](flat, out, n, n_bytes, BYTES=_BYTES_PER_PROGRAM)
    return out


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Triton :func:`pmexp.masks.unpack_bits` on a flat result of ``numel`` bools."""
    out = torch.empty(numel, dtype=torch.uint8, device=packed.device)
    n_bytes = (numel + 7) // 8
    if numel:
        grid = (triton.cdiv(n_bytes, _BYTES_PER_PROGRAM),)
        _unpack_kernel[grid](packed.contiguous(), out, numel, n_bytes, BYTES=_BYTES_PER_PROGRAM)
    return out.view(torch.bool)
