"""Fused Triton dropout kernels, registered as torch custom ops.

``pmexp::fused_dropout(x, seed, p, store_bits) -> (y, bits)`` reads ``x`` once, draws Philox
random numbers from ``seed`` (drawn from torch's default generator: an int in eager mode, a
1-element int64 device tensor inside ``torch.compile``), writes ``y = x * keep / (1 - p)`` and,
when ``store_bits``, the keep mask packed 8 elements per byte (the :mod:`pmexp.masks` layout).
Dropout's backward is the same map applied to the gradient, so the ``seeded`` variant's backward
calls this op again with the same seed. ``pmexp::bits_dropout_backward(grad, bits, p)`` is the ``packed`` backward.
``pmexp::philox_bits(seed, n, p)`` draws the same bits alone (compiled ``packed`` on CUDA).

The random stream depends only on (seed, element index): element ``e`` lies in tile
``t = e // TILE``; within a tile, chunk ``j = (e % TILE) // (TILE / 4)`` takes output ``j`` of the
Philox-4x32-10 call at counter ``t * TILE / 4 + e % (TILE / 4)``, compared as a 31-bit integer
with ``round(p * 2**31)``. Layout and tile size were chosen on H200 timings
(``python -m pmexp.bench.rng_variants``, notes in ``runs/2026-11-28-h200/kernels.md``).
Registered with :func:`torch.library.triton_op`, so ``torch.compile`` traces them without a
graph break. Imported only when a CUDA tensor needs it (or by tests under TRITON_INTERPRET=1).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

__all__ = [
    "TILE", "KERNEL_DTYPES", "fused_dropout", "philox_bits", "bits_dropout_backward", "keep_threshold", "forward",
    "backward", "keep_bits",
]

TILE = 4096  # elements per program and per RNG tile; part of the random stream's definition
_NUM_WARPS = 4
_BWD_BYTES = 128
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
# fp64 computes in fp64 with the scale 1 / (1 - p) rounded to fp32 (a Triton float argument)


def keep_threshold(p: float) -> int:
    """Integer threshold on 31-bit uniform integers: keep when ``r >= round(p * 2**31)``."""
    return min(int(round(p * 2**31)), 2**31 - 1)


@triton.jit
def _scaled(x, scale, COMPUTE: tl.constexpr):
    return x.to(COMPUTE) * scale


@triton.jit
def _fwd_chunk(
    x_ptr,
    y_ptr,
    bits_ptr,
    start,
    local,
    r,
    threshold,
    scale,
    n,
    Q: tl.constexpr,
    STORE_BITS: tl.constexpr,
    COMPUTE: tl.constexpr,
):
    idx = start + local
    inb = idx < n
    x = tl.load(x_ptr + idx, mask=inb, other=0)
    keep = _keep(r, threshold) & inb
    y = tl.where(keep, _scaled(x, scale, COMPUTE), 0.0)
    tl.store(y_ptr + idx, y.to(y_ptr.dtype.element_ty), mask=inb)
    if STORE_BITS:
        _store_bits(bits_ptr, start, local, keep, n, Q)


@triton.jit
def _keep(r, threshold):
    return (r.to(tl.uint32, bitcast=True) >> 1).to(tl.int32) >= threshold


@triton.jit
def _store_bits(bits_ptr, start, local, keep, n, Q: tl.constexpr):
    weighted = keep.to(tl.int32) << (local % 8)
    byte = tl.sum(tl.reshape(weighted, (Q // 8, 8)), axis=1)
    b_idx = start // 8 + tl.arange(0, Q // 8)
    tl.store(bits_ptr + b_idx, byte.to(tl.uint8), mask=b_idx * 8 < n)


@triton.jit(do_not_specialize=["seed"])
def _fwd_kernel(
    x_ptr,
    y_ptr,
    bits_ptr,
    seed,
    n,
    threshold,
    scale,
    TILE: tl.constexpr,
    STORE_BITS: tl.constexpr,
    COMPUTE: tl.constexpr,
    SEED_IS_PTR: tl.constexpr,
):
    pid = tl.program_id(0)
    Q: tl.constexpr = TILE // 4
    local = tl.arange(0, Q)
    if SEED_IS_PTR:
        seed = tl.load(seed)
    r0, r1, r2, r3 = tl.randint4x(seed, pid * Q + local)
    base = pid.to(tl.int64) * TILE
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base, local, r0, threshold, scale, n, Q, STORE_BITS, COMPUTE)
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base + Q, local, r1, threshold, scale, n, Q, STORE_BITS, COMPUTE)
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base + 2 * Q, local, r2, threshold, scale, n, Q, STORE_BITS, COMPUTE)
    _fwd_chunk(x_ptr, y_ptr, bits_ptr, base + 3 * Q, local, r3, threshold, scale, n, Q, STORE_BITS, COMPUTE)


@triton.jit(do_not_specialize=["seed"])
def _bits_kernel(bits_ptr, seed, n, threshold, TILE: tl.constexpr):
    """The bits ``_fwd_kernel`` stores for ``seed``, without reading or writing ``x``: 4 keep
    decisions per Philox call, where Inductor's ``rand`` spends a call on each (compiled ``packed``)."""
    pid = tl.program_id(0)
    Q: tl.constexpr = TILE // 4
    local = tl.arange(0, Q)
    r0, r1, r2, r3 = tl.randint4x(tl.load(seed), pid * Q + local)
    base = pid.to(tl.int64) * TILE
    _store_bits(bits_ptr, base, local, _keep(r0, threshold) & (base + local < n), n, Q)
    _store_bits(bits_ptr, base + Q, local, _keep(r1, threshold) & (base + Q + local < n), n, Q)
    _store_bits(bits_ptr, base + 2 * Q, local, _keep(r2, threshold) & (base + 2 * Q + local < n), n, Q)
    _store_bits(bits_ptr, base + 3 * Q, local, _keep(r3, threshold) & (base + 3 * Q + local < n), n, Q)


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


def forward(
    x: torch.Tensor, seed: torch.Tensor | int, p: float, store_bits: bool, wrap=_identity,
    out_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the fused forward: eager with an int seed; traced (``wrap_triton``) with a 1-element
    int64 seed tensor on the device. The same seed value gives the same mask either way. ``y`` is
    computed in ``x``'s precision and stored as ``out_dtype`` (default ``x``'s): a cast for free."""
    x = x.contiguous()
    n = x.numel()
    y = torch.empty_like(x, dtype=out_dtype)
    bits = torch.empty((n + 7) // 8 if store_bits else 0, dtype=torch.uint8, device=x.device)
    if n:
        wrap(_fwd_kernel)[(triton.cdiv(n, TILE),)](
            x,
            y,
            bits,
            seed,
            n,
            keep_threshold(p),
            1.0 / (1.0 - p),
            TILE=TILE,
            STORE_BITS=store_bits,
            COMPUTE=_compute_dtype(x),
            SEED_IS_PTR=isinstance(seed, torch.Tensor),
            num_warps=_NUM_WARPS,
        )
    return y, bits


def backward(grad: torch.Tensor, bits: torch.Tensor, p: float, wrap=_identity,
             out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Launch the bits backward directly: ``grad * keep / (1 - p)``, computed in float32 (float64
    for float64) and rounded once to ``out_dtype`` (default ``grad``'s): the same numbers as
    ``backward(grad.float(), bits, p).to(out_dtype)`` without the float32 tensor in between."""
    grad = grad.contiguous()
    n = grad.numel()
    dx = torch.empty_like(grad, dtype=out_dtype)
    if n:
        wrap(_bwd_bits_kernel)[(triton.cdiv((n + 7) // 8, _BWD_BYTES),)](
            grad, dx, bits, n, 1.0 / (1.0 - p), BYTES=_BWD_BYTES, COMPUTE=_compute_dtype(grad)
        )
    return dx


@triton_op("pmexp::fused_dropout", mutates_args=())
def fused_dropout(x: torch.Tensor, seed: torch.Tensor, p: float, store_bits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused dropout forward; ``bits`` is empty unless ``store_bits``. Requires 0 < p < 1."""
    return forward(x, seed, p, store_bits, wrap_triton)


def keep_bits(seed: torch.Tensor, n: int, p: float, wrap=_identity) -> torch.Tensor:
    """``ceil(n / 8)`` bytes of keep bits from a 1-element int64 device ``seed``: the bits
    :func:`forward` stores for ``x.numel() == n`` and that seed (padding bits of the last byte 0)."""
    bits = torch.empty((n + 7) // 8, dtype=torch.uint8, device=seed.device)
    if n:
        wrap(_bits_kernel)[(triton.cdiv(n, TILE),)](bits, seed, n, keep_threshold(p), TILE=TILE,
                                                     num_warps=_NUM_WARPS)
    return bits


@triton_op("pmexp::philox_bits", mutates_args=())
def philox_bits(seed: torch.Tensor, n: int, p: float) -> torch.Tensor:
    """Keep bits only (see :func:`keep_bits`): compiled ``packed``'s draw on CUDA. Requires 0 < p < 1."""
    return keep_bits(seed, n, p, wrap_triton)


@triton_op("pmexp::bits_dropout_backward", mutates_args=())
def bits_dropout_backward(grad: torch.Tensor, bits: torch.Tensor, p: float) -> torch.Tensor:
    """Backward of the ``packed`` variant: ``grad * keep / (1 - p)`` with keep read from bits."""
    return backward(grad, bits, p, wrap_triton)
