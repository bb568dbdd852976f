"""Exploration: what the fused dropout forward costs with different random-number layouts.

    python -m pmexp.bench.rng_variants

The dropout forward is bandwidth-bound in fp32 but Philox-bound in bf16 (2 bytes moved per
element against ~20 integer instructions of Philox-4x32-10 per 32-bit random). This script
times candidate kernels side by side with torch's dropout and a copy, and checks each one's
drop rate, so the production kernel (pmexp/dropout/kernels.py) is chosen on numbers.
Candidates: 32-bit randoms (4 per Philox call) with int64 / int32 offsets, 7 or 10 rounds, and
tile / warp sizes; 16-bit randoms (8 per call, in 8 chunks), 7 or 10 rounds; a 1-D kernel that
writes no bits (the cost of RNG and scaling alone). First round (2026-11-28, H200): 16-bit randoms
gathered one Philox call per mask byte ran 2x slower than 32-bit chunks (cross-thread layout), and
7 rounds did not help, so Philox arithmetic alone is not the limit.
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from triton.testing import do_bench


@triton.jit
def _chunk32(x_ptr, y_ptr, bits_ptr, start, local, rows, cols, r, threshold, scale, n):
    idx = start + local
    inb = idx < n
    x = tl.load(x_ptr + idx, mask=inb, other=0)
    keep = ((r.to(tl.uint32, bitcast=True) >> 1).to(tl.int32) >= threshold) & inb
    y = tl.where(keep, x.to(tl.float32) * scale, 0.0)
    tl.store(y_ptr + idx, y.to(y_ptr.dtype.element_ty), mask=inb)
    byte = tl.sum(keep.to(tl.int32) << cols[None, :], axis=1)
    b_idx = start // 8 + rows
    tl.store(bits_ptr + b_idx, byte.to(tl.uint8), mask=b_idx * 8 < n)


@triton.jit
def k32(
    x_ptr, y_ptr, bits_ptr, seed_ptr, n, threshold, scale, TILE: tl.constexpr, OFF64: tl.constexpr, ROUNDS: tl.constexpr
):
    if OFF64:
        pid = tl.program_id(0).to(tl.int64)
    else:
        pid = tl.program_id(0)
    Q: tl.constexpr = TILE // 4
    ROWS: tl.constexpr = Q // 8
    rows = tl.arange(0, ROWS)
    cols = tl.arange(0, 8)
    local = rows[:, None] * 8 + cols[None, :]
    seed = tl.load(seed_ptr)
    r0, r1, r2, r3 = tl.randint4x(seed, pid * Q + local, ROUNDS)
    base = pid.to(tl.int64) * TILE
    _chunk32(x_ptr, y_ptr, bits_ptr, base, local, rows, cols, r0, threshold, scale, n)
    _chunk32(x_ptr, y_ptr, bits_ptr, base + Q, local, rows, cols, r1, threshold, scale, n)
    _chunk32(x_ptr, y_ptr, bits_ptr, base + 2 * Q, local, rows, cols, r2, threshold, scale, n)
    _chunk32(x_ptr, y_ptr, bits_ptr, base + 3 * Q, local, rows, cols, r3, threshold, scale, n)


@triton.jit
def _chunk16(x_ptr, y_ptr, bits_ptr, start, local, rows, cols, u, threshold16, scale, n):
    idx = start + local
    inb = idx < n
    x = tl.load(x_ptr + idx, mask=inb, other=0)
    keep = (u.to(tl.int32) >= threshold16) & inb
    y = tl.where(keep, x.to(tl.float32) * scale, 0.0)
    tl.store(y_ptr + idx, y.to(y_ptr.dtype.element_ty), mask=inb)
    byte = tl.sum(keep.to(tl.int32) << cols[None, :], axis=1)
    b_idx = start // 8 + rows
    tl.store(bits_ptr + b_idx, byte.to(tl.uint8), mask=b_idx * 8 < n)


@triton.jit
def k16c(x_ptr, y_ptr, bits_ptr, seed_ptr, n, threshold16, scale, TILE: tl.constexpr, ROUNDS: tl.constexpr):
    """16-bit randoms, 8 chunks of TILE/8 per Philox call over TILE/8 offsets."""
    pid = tl.program_id(0)
    Q: tl.constexpr = TILE // 8
    ROWS: tl.constexpr = Q // 8
    rows = tl.arange(0, ROWS)
    cols = tl.arange(0, 8)
    local = rows[:, None] * 8 + cols[None, :]
    seed = tl.load(seed_ptr)
    r0, r1, r2, r3 = tl.randint4x(seed, pid * Q + local, ROUNDS)
    base = pid.to(tl.int64) * TILE
    w0 = r0.to(tl.uint32, bitcast=True)
    w1 = r1.to(tl.uint32, bitcast=True)
    w2 = r2.to(tl.uint32, bitcast=True)
    w3 = r3.to(tl.uint32, bitcast=True)
    _chunk16(x_ptr, y_ptr, bits_ptr, base, local, rows, cols, w0 & 0xFFFF, threshold16, scale, n)
    _chunk16(x_ptr, y_ptr, bits_ptr, base + Q, local, rows, cols, w0 >> 16, threshold16, scale, n)
    _chunk16(x_ptr, y_ptr, bits_ptr, base + 2 * Q, local, rows, cols, w1 & 0xFFFF, threshold16, scale, n)
    _chunk16(x_ptr, y_ptr, bits_ptr, base + 3 * Q, local, rows, cols, w1 >> 16, threshold16, scale, n)
    _chunk16(x_ptr, y_ptr, bits_ptr, base + 4 * Q, local, rows, cols, w2 & 0xFFFF, threshold16, scale, n)
    _chunk16(x_ptr, y_ptr, bits_ptr, base + 5 * Q, local, rows, cols, w2 >> 16, threshold16, scale, n)
    _chunk16(x_ptr, y_ptr, bits_ptr, base + 6 * Q, local, rows, cols, w3 & 0xFFFF, threshold16, scale, n)
    _chunk16(x_ptr, y_ptr, bits_ptr, base + 7 * Q, local, rows, cols, w3 >> 16, threshold16, scale, n)


@triton.jit
def k32_nobits(x_ptr, y_ptr, seed_ptr, n, threshold, scale, TILE: tl.constexpr):
    """1-D, no mask output: what the RNG + scale alone cost."""
    pid = tl.program_id(0)
    Q: tl.constexpr = TILE // 4
    local = tl.arange(0, Q)
    seed = tl.load(seed_ptr)
    r0, r1, r2, r3 = tl.randint4x(seed, pid * Q + local)
    base = pid.to(tl.int64) * TILE
    for j in tl.static_range(4):
        r = r0 if j == 0 else (r1 if j == 1 else (r2 if j == 2 else r3))
        idx = base + j * Q + local
        inb = idx < n
        x = tl.load(x_ptr + idx, mask=inb, other=0)
        keep = (r.to(tl.uint32, bitcast=True) >> 1).to(tl.int32) >= threshold
        tl.store(y_ptr + idx, tl.where(keep, x.to(tl.float32) * scale, 0.0).to(y_ptr.dtype.element_ty), mask=inb)


@triton.jit
def _chunk1d(x_ptr, y_ptr, bits_ptr, start, local, u, threshold, scale, n, Q: tl.constexpr):
    idx = start + local
    inb = idx < n
    x = tl.load(x_ptr + idx, mask=inb, other=0)
    keep = (u >= threshold) & inb
    tl.store(y_ptr + idx, tl.where(keep, x.to(tl.float32) * scale, 0.0).to(y_ptr.dtype.element_ty), mask=inb)
    w = keep.to(tl.int32) << (local % 8)
    byte = tl.sum(tl.reshape(w, (Q // 8, 8)), axis=1)
    b_idx = start // 8 + tl.arange(0, Q // 8)
    tl.store(bits_ptr + b_idx, byte.to(tl.uint8), mask=b_idx * 8 < n)


@triton.jit
def k32_1d(x_ptr, y_ptr, bits_ptr, seed_ptr, n, threshold, scale, TILE: tl.constexpr):
    """1-D chunks, 32-bit randoms, bits packed through a reshape."""
    pid = tl.program_id(0)
    Q: tl.constexpr = TILE // 4
    local = tl.arange(0, Q)
    seed = tl.load(seed_ptr)
    r0, r1, r2, r3 = tl.randint4x(seed, pid * Q + local)
    base = pid.to(tl.int64) * TILE
    _chunk1d(
        x_ptr, y_ptr, bits_ptr, base, local, (r0.to(tl.uint32, bitcast=True) >> 1).to(tl.int32), threshold, scale, n, Q
    )
    _chunk1d(
        x_ptr,
        y_ptr,
        bits_ptr,
        base + Q,
        local,
        (r1.to(tl.uint32, bitcast=True) >> 1).to(tl.int32),
        threshold,
        scale,
        n,
        Q,
    )
    _chunk1d(
        x_ptr,
        y_ptr,
        bits_ptr,
        base + 2 * Q,
        local,
        (r2.to(tl.uint32, bitcast=True) >> 1).to(tl.int32),
        threshold,
        scale,
        n,
        Q,
    )
    _chunk1d(
        x_ptr,
        y_ptr,
        bits_ptr,
        base + 3 * Q,
        local,
        (r3.to(tl.uint32, bitcast=True) >> 1).to(tl.int32),
        threshold,
        scale,
        n,
        Q,
    )


@triton.jit
def k16_1d(x_ptr, y_ptr, bits_ptr, seed_ptr, n, threshold16, scale, TILE: tl.constexpr):
    """1-D chunks, 16-bit randoms (8 chunks per Philox call), bits packed through a reshape."""
    pid = tl.program_id(0)
    Q: tl.constexpr = TILE // 8
    local = tl.arange(0, Q)
    seed = tl.load(seed_ptr)
    r0, r1, r2, r3 = tl.randint4x(seed, pid * Q + local)
    base = pid.to(tl.int64) * TILE
    w0 = r0.to(tl.uint32, bitcast=True)
    w1 = r1.to(tl.uint32, bitcast=True)
    w2 = r2.to(tl.uint32, bitcast=True)
    w3 = r3.to(tl.uint32, bitcast=True)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base, local, (w0 & 0xFFFF).to(tl.int32), threshold16, scale, n, Q)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base + Q, local, (w0 >> 16).to(tl.int32), threshold16, scale, n, Q)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base + 2 * Q, local, (w1 & 0xFFFF).to(tl.int32), threshold16, scale, n, Q)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base + 3 * Q, local, (w1 >> 16).to(tl.int32), threshold16, scale, n, Q)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base + 4 * Q, local, (w2 & 0xFFFF).to(tl.int32), threshold16, scale, n, Q)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base + 5 * Q, local, (w2 >> 16).to(tl.int32), threshold16, scale, n, Q)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base + 6 * Q, local, (w3 & 0xFFFF).to(tl.int32), threshold16, scale, n, Q)
    _chunk1d(x_ptr, y_ptr, bits_ptr, base + 7 * Q, local, (w3 >> 16).to(tl.int32), threshold16, scale, n, Q)


def launchers(p: float):
    scale = 1 / (1 - p)
    t32 = int(round(p * 2**31))
    t16 = int(round(p * 2**16))

    def make32(off64, rounds, tile=1024, warps=4):
        def run(x, y, bits, seed):
            k32[(triton.cdiv(x.numel(), tile),)](
                x, y, bits, seed, x.numel(), t32, scale, TILE=tile, OFF64=off64, ROUNDS=rounds, num_warps=warps
            )

        return run

    def make16c(rounds, tile=2048, warps=4):
        def run(x, y, bits, seed):
            k16c[(triton.cdiv(x.numel(), tile),)](
                x, y, bits, seed, x.numel(), t16, scale, TILE=tile, ROUNDS=rounds, num_warps=warps
            )

        return run

    def nobits(tile=1024, warps=4):
        def run(x, y, bits, seed):
            k32_nobits[(triton.cdiv(x.numel(), tile),)](x, y, seed, x.numel(), t32, scale, TILE=tile, num_warps=warps)

        return run

    def make1d(kernel, t, tile, warps):
        def run(x, y, bits, seed):
            kernel[(triton.cdiv(x.numel(), tile),)](x, y, bits, seed, x.numel(), t, scale, TILE=tile, num_warps=warps)

        return run

    return {
        "r32_1d_t1024w4": make1d(k32_1d, t32, 1024, 4),
        "r32_1d_t4096w4": make1d(k32_1d, t32, 4096, 4),
        "r32_1d_t4096w8": make1d(k32_1d, t32, 4096, 8),
        "r16_1d_t2048w4": make1d(k16_1d, t16, 2048, 4),
        "r16_1d_t8192w8": make1d(k16_1d, t16, 8192, 8),
        "r16_1d_t4096w4": make1d(k16_1d, t16, 4096, 4),
        "r16c_10r": make16c(10),
        "r16c_7r": make16c(7),
        "r16c_10r_w8": make16c(10, 4096, 8),
        "r16c_10r_w2": make16c(10, 2048, 2),
        "r32_1d_nobits": nobits(),
        "r32_1d_nobits_w8": nobits(2048, 8),
        "r32_off32_10r_w2": make32(False, 10, 1024, 2),
        "r32_off32_10r_t4096w8": make32(False, 10, 4096, 8),
        "r32_off64_10r": make32(True, 10),
        "r32_off32_10r": make32(False, 10),
        "r32_off32_7r": make32(False, 7),
        "r32_off32_10r_t2048": make32(False, 10, 2048, 8),
    }


def main() -> None:
    p = 0.1
    rows = []
    for n in (201_326_592,):
        for dtype in (torch.float32, torch.bfloat16):
            x = (torch.randn(n, device="cuda").abs() + 0.1).to(dtype)  # no zeros: y == 0 exactly where dropped
            y = torch.empty_like(x)
            bits = torch.empty((n + 7) // 8, dtype=torch.uint8, device="cuda")
            seed = torch.tensor([12345], device="cuda")
            copy = do_bench(partial(y.copy_, x), return_mode="median")
            native = do_bench(partial(F.dropout, x, p, True), return_mode="median")
            floor = copy * (2 * n * x.element_size() + n / 8) / (2 * n * x.element_size())
            for name, fn in launchers(p).items():
                ms = do_bench(partial(fn, x, y, bits, seed), return_mode="median")
                rate = 1 - (y != 0).double().mean().item()
                if "nobits" not in name:  # the bits must agree with the output's zeros
                    from pmexp.masks.bits import unpack_bits_torch

                    assert torch.equal(unpack_bits_torch(bits, n), y != 0), name
                rows.append(
                    dict(
                        n=n,
                        dtype=str(dtype),
                        kernel=name,
                        ms=ms,
                        native_ms=native,
                        floor_ms=floor,
                        over_floor=ms / floor,
                        vs_native=ms / native,
                        drop_rate=rate,
                    )
                )
                print(
                    f"{n:>11,} {str(dtype):15} {name:22} {ms:.4f} ms  floor {floor:.4f}  x{ms / floor:.2f}  "
                    f"native {native:.4f}  rate {rate:.5f}",
                    flush=True,
                )
    # CPU launch overhead per call, 1M elements (GPU work ~5 us): direct launch vs torch.ops
    from pmexp.dropout import dropout

    x = torch.randn(1 << 20, device="cuda")
    xg = x.clone().requires_grad_(True)
    seed = torch.tensor([1], device="cuda")
    direct = launchers(p)["r32_off32_10r"]
    y = torch.empty_like(x)
    bits = torch.empty((x.numel() + 7) // 8, dtype=torch.uint8, device="cuda")
    for label, fn in {
        "direct_launch": lambda: direct(x, y, bits, seed),
        "torch_ops_triton_op": lambda: torch.ops.pmexp.fused_dropout(x, seed, p, True),
        "pmexp_packed_autograd": lambda: dropout(xg, p, True, "packed"),
        "pmexp_seeded_autograd": lambda: dropout(xg, p, True, "seeded"),
        "native_dropout_autograd": lambda: F.dropout(xg, p, True),
        "native_dropout": lambda: F.dropout(x, p, True),
        "randint_seed": lambda: torch.randint(0, 2**62, (1,), device="cuda"),
    }.items():
        for _ in range(50):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(2000):
            fn()
        torch.cuda.synchronize()
        us = (time.perf_counter() - t0) / 2000 * 1e6
        rows.append(dict(overhead=label, us_per_call=us))
        print(f"launch overhead {label:22} {us:.1f} us/call", flush=True)
    json.dump(rows, sys.stdout if len(sys.argv) < 2 else open(sys.argv[1], "w"), indent=1)


if __name__ == "__main__":
    main()
