"""Triton LayerNorm backward from the output (Tempo's :mod:`pmexp.tempo.layernorm`), one pass over rows.

Per row of ``N`` normalized elements: ``x_hat = (y - b) / w`` in registers, ``gw = g * w``,
``dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat))``, written in ``grad``'s dtype; ``dw`` and
``db`` are summed over the program's rows in float32 registers and written as one partial row per
program, which torch then sums (deterministic: no atomics). Reads ``y`` and ``g`` once and writes
``dx`` once, where the torch version wrote ``x_hat`` and ran torch's backward on it (0.158 ms against
stock's 0.077 for 16 x 512 x 1024 float32 on an H200, runs/2026-11-29-tempo-speed).
Imported only when a CUDA tensor needs it (or by tests under ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = ["KERNEL_DTYPES", "backward", "supports"]

KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"  # read by Triton when the kernel is defined, as here
_ROWS = 16  # rows per program: 512 programs for BERT-large's 8192 rows, partial sums 512 x N


@triton.jit
def _ln_bwd_kernel(g_ptr, y_ptr, w_ptr, b_ptr, rstd_ptr, dx_ptr, dw_part_ptr, db_part_ptr, m, n,
                   ROWS: tl.constexpr, BLOCK_N: tl.constexpr, ROUNDED_MUL: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    inb = cols < n
    w = tl.load(w_ptr + cols, mask=inb, other=1.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=inb, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_N], dtype=tl.float32)
    db = tl.zeros([BLOCK_N], dtype=tl.float32)
    for i in range(ROWS):
        row = pid * ROWS + i
        if row < m:
            offs = row.to(tl.int64) * n + cols
            g = tl.load(g_ptr + offs, mask=inb, other=0.0).to(tl.float32)
            y = tl.load(y_ptr + offs, mask=inb, other=0.0).to(tl.float32)
            rstd = tl.load(rstd_ptr + row).to(tl.float32)
            x_hat = tl.where(inb, tl.math.div_rn(y - b, w), 0.0)  # IEEE division, as torch's
            if ROUNDED_MUL:  # not fused into gw - c2 below (exactly 0 for one element a row)
                gw = libdevice.mul_rn(g, w)
            else:  # Triton's interpreter: numpy rounds every product, and has no libdevice
                gw = g * w
            c1 = tl.sum(gw * x_hat, axis=0) / n
            c2 = tl.sum(gw, axis=0) / n
            dx = (gw - c2 - x_hat * c1) * rstd
            tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=inb)
            dw += g * x_hat
            db += g
    tl.store(dw_part_ptr + pid * n + cols, dw, mask=inb)
    tl.store(db_part_ptr + pid * n + cols, db, mask=inb)


def supports(grad: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
             dims: tuple[int, ...]) -> bool:
    """Whether the kernel serves this call: one trailing normalized dim, weight and bias, kernel dtypes
    (the rest takes the torch path)."""
    return (len(dims) == 1 and dims[0] == y.dim() - 1 and weight is not None and bias is not None
            and y.dtype in KERNEL_DTYPES and grad.dtype in KERNEL_DTYPES and y.shape[-1] <= 16384)


def backward(grad: torch.Tensor, y: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dx, dw, db)`` of a LayerNorm over the last dim, from its output ``y`` and ``rstd``."""
    grad, y, rstd = grad.contiguous(), y.contiguous(), rstd.contiguous()
    n = y.shape[-1]
    m = y.numel() // n if n else 0
    dx = torch.empty_like(grad, memory_format=torch.contiguous_format)
    programs = triton.cdiv(m, _ROWS)
    # dw's and db's partial rows in one tensor, summed by one reduction; left uninitialised where the
    # kernel runs (every program writes its whole row): 2 launches with the kernel's, where two zero
    # fills and two sums made 5 (BERT-large: 48 LayerNorm backwards a step)
    parts = (torch.empty if m else torch.zeros)(2, max(programs, 1), n, dtype=torch.float32, device=y.device)
    if m:
        block = triton.next_power_of_2(n)
        _ln_bwd_kernel[(programs,)](grad, y, weight, bias, rstd, dx, parts[0], parts[1], m, n, ROWS=_ROWS,
                                    BLOCK_N=block, ROUNDED_MUL=not _INTERPRETED, num_warps=min(max(block // 256, 1), 8))
    dw, db = parts.sum(1)
    return dx, dw.to(weight.dtype), db.to(bias.dtype)
