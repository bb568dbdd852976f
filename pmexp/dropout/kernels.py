"""Fused Triton dropout kernels, registered as torch custom ops.

``pmexp::fused_dropout(x, seed, p, store_bits) -> (y, bits)`` reads ``x`` once, draws Philox
random numbers from ``seed`` (a 1-element int64 tensor on the device, drawn from torch's
default generator), writes ``y = x * keep / (1 - p)`` and, when ``store_bits``, the keep mask
packed 8 elements per byte (the :mod:`pmexp.masks` layout). Dropout's backward is the same
map applied to the gradient, so the ``seeded`` variant's backward calls this op again with
the same seed. ``pmexp::bits_dropout_backward(grad, bits, p)`` is the ``packed`` backward.

The random stream depends only on (seed, element index): element ``e`` lies in tile
``e // TILE``; within a tile, chunk ``j`` (of four) takes output ``j`` of one Philox call.
Registered with :func:`torch.library.triton_op`, so ``torch.compile`` traces them without a
graph break. Imported only when a CUDA tensor needs it (or by tests under TRITON_INTERPRET=1).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

__all__ = ["TILE", "KERNEL_DTYPES", "fused_dropout", "bits_dropout_backward", "keep_threshold", "forward", "backward"]

TILE = 1024  # elements per program and per RNG tile; part of the random stream's definition
_BWD_BYTES = TILE // 8
# fp64 computes in fp64 with the scale 1 / (1 - p) rounded to fp32 (a Triton float argument)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def keep_threshold(p: float) -> int:
    """Integer threshold on 31-bit uniform integers: keep when ``r >= round(p * 2**31)``."""
    return min(int(round(p * 2**31)), 2**31 - 1)


@triton.jit
def _scaled(x, scale, COMPUTE: tl.constexpr):
    return x.to(COMPUTE) * scale


@triton.jit
def _fwd_chunk(x_ptr, y_ptr, bits_ptr, start, local, rows, cols, r, threshold, scale, n,
               STORE_BITS: tl.constexpr, COMPUTE: tl.constexpr):
    idx = start + local
    inb = idx < n
    x = tl.load(x_ptr + idx, mask=inb, other=0)
    keep = ((r.to(tl.uint32, bitcast=True) >> 1).to(tl.int32) >= threshold) & inb
    y = tl.where(keep, _scaled(x, scale, COMPUTE), 0.0)
    tl.store(y_ptr + idx, y.to(y_ptr.dtype.element_ty), mask=inb)
    if STORE_BITS:
        byte = tl.sum(keep.to(tl.int32) << cols[None, :], axis=1)
        b_idx = start // 8 + rows
        tl.store(bits_ptr + b_idx, byte.to(tl.uint8), mask=b_idx * 8 < n)


@triton.jit
def _fwd_kernel(x_ptr, y_ptr, bits_ptr, seed_ptr, n, threshold, scale,
                TILE: tl.constexpr, STORE_BITS: tl.constexpr, COMPUTE: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    Q: tl.constexpr = TILE // 4
    ROWS: tl.constexpr = Q // 8
    rows = tl.arange(0, ROWS)
    cols = tl.arange(0, 8)
    local = rows[:, None] * 8 + cols[None, :]
    seed = tl.load(seed_ptr)
    r0, r1, r2, r3 = tl.randint4x(seed, pid * Q + local)
    base = pid * TILE
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base, local, rows, cols, r0, threshold, scale, n, STORE_BITS, COMPUTE)
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base + Q, local, rows, cols, r1, threshold, scale, n, STORE_BITS, COMPUTE)
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base + 2 * Q, local, rows, cols, r2, threshold, scale, n, STORE_BITS, COMPUTE)
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base + 3 * Q, local, rows, cols, r3, threshold, scale, n, STORE_BITS, COMPUTE)


@triton.jit
def _bwd_bits_kernel(g_ptr, dx_ptr, bits_ptr, n, scale, BYTES: tl.constexpr, COMPUTE: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BYTES + tl.arange(0, BYTES)
    cols = tl.arange(0, 8)
    idx = rows[:, None] * 8 + cols[None, :]
    inb = idx < n
    byte = tl.load(bits_ptr + rows, mask=rows * 8 < n, other=0).to(tl.int32)
    keep = ((byte[:, None] >> cols[None, :]) & 1) != 0
    g = tl.load(g_ptr + idx, mask=inb, other=0)
    dx = tl.where(keep, _scaled(g, scale, COMPUTE), 0.0)
    tl.store(dx_ptr + idx, dx.to(dx_ptr.dtype.element_ty), mask=inb)


def _compute_dtype(t: torch.Tensor):
    return tl.float64 if t.dtype == torch.float64 else tl.float32


def _identity(kernel):
    return kernel


def forward(x: torch.Tensor, seed: torch.Tensor, p: float, store_bits: bool,
            wrap=_identity) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the fused forward directly (eager path; ``wrap_triton`` when traced)."""
    x = x.contiguous()
    n = x.numel()
    y = torch.empty_like(x)
    bits = torch.empty((n + 7) // 8 if store_bits else 0, dtype=torch.uint8, device=x.device)
    if n:
        wrap(_fwd_kernel)[(triton.cdiv(n, TILE),)](
            x, y, bits, seed, n, keep_threshold(p), 1.0 / (1.0 - p),
            TILE=TILE, STORE_BITS=store_bits, COMPUTE=_compute_dtype(x),
        )
    return y, bits


def backward(grad: torch.Tensor, bits: torch.Tensor, p: float, wrap=_identity) -> torch.Tensor:
    """Launch the bits backward directly: ``grad * keep / (1 - p)``."""
    grad = grad.contiguous()
    n = grad.numel()
    dx = torch.empty_like(grad)
    if n:
        wrap(_bwd_bits_kernel)[(triton.cdiv((n + 7) // 8, _BWD_BYTES),)](
            grad, dx, bits, n, 1.0 / (1.0 - p), BYTES=_BWD_BYTES, COMPUTE=_compute_dtype(grad)
        )
    return dx


@triton_op("pmexp::fused_dropout", mutates_args=())
def fused_dropout(x: torch.Tensor, seed: torch.Tensor, p: float, store_bits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused dropout forward; ``bits`` is empty unless ``store_bits``. Requires 0 < p < 1."""
    return forward(x, seed, p, store_bits, wrap_triton)


@triton_op("pmexp::bits_dropout_backward", mutates_args=())
def bits_dropout_backward(grad: torch.Tensor, bits: torch.Tensor, p: float) -> torch.Tensor:
    """Backward of the ``packed`` variant: ``grad * keep / (1 - p)`` with keep read from bits."""
    return backward(grad, bits, p, wrap_triton)
