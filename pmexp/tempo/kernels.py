"""Fused Triton kernels for Tempo's GELU (:mod:`pmexp.tempo.gelu`), registered as torch custom ops.

``pmexp::tempo_gelu_branch_bits(x) -> bits`` reads ``x`` once and writes the branch mask
``x >= X_MIN`` packed 8 elements per byte (the :mod:`pmexp.masks` layout), with no bool tensor in
between. ``y`` itself stays torch's own ``F.gelu`` (bit for bit the stock forward).

``pmexp::tempo_gelu_backward(grad, y, branch) -> dx`` reads ``grad``, ``y`` and the branch (packed
``uint8`` bits, or a bool tensor) and writes ``dx = grad * g'(x)``, recovering ``x`` in registers
(float32; float64 for float64 inputs); nothing of the activation's size is allocated besides
``dx``. Recovery, per element (``w = ±sqrt((y - Y_MIN) / a)``, ``a = g''(X_MIN) / 2``, sign by
branch, is the distance to the minimum in the "square-root" coordinate where ``g`` is nearly
linear):

1. a first guess: near the minimum (``-W_LEFT < w < W_RIGHT``) the reversed Taylor series of
   ``g`` at ``X_MIN``, ``x = X_MIN + w - 0.29995 w^2 + 0.23548 w^3 - ...`` (5 terms); on the
   right branch beyond it ``x = y (1 + exp(-1.702 y))`` (``1 / Phi`` approximated by a
   logistic); on the left branch beyond it the tail asymptotic ``x = -sqrt(L + 2 ln(L / (1 + L)))``
   with ``L = -2 ln(-y sqrt(2 pi))`` (from ``Phi(x) ~ phi(x) |x| / (1 + x^2)``). The guess is
   within 0.05 of ``x`` everywhere.
2. ``NEWTON`` Newton steps on ``g(x) = y`` (1 for float32 and 16-bit inputs, 3 for float64),
   clamped into the bracket of :mod:`pmexp.tempo.gelu` (left branch: ``[-sqrt(L), X_MIN]``, from
   Mills' ratio).
3. one more evaluation of ``g`` and ``g'`` at the last iterate ``x_k``: the Newton step ``s`` it
   gives is not taken; instead ``g'(x_k - s) ~ g'(x_k) - g''(x_k) s`` (``g'' = phi (2 - x^2)`` is
   free), which is as accurate as a further step. So float32 costs two ``erf`` and two ``exp``
   per element.
4. within ``|w| < W_FINAL`` of the minimum the series is used as is (no Newton: ``g'`` is ~0
   there and a step would only amplify the rounding of ``y``).

Accuracy, float32, against torch's float32 gradient at the true ``x``, max abs error for
``|x - X_MIN|`` > 0.1 / > 0.01 / > 1e-3 / closer (the rest is the conditioning of ``y``, see
:mod:`pmexp.tempo.gelu`): on an H200 over every finite float32 input, 8.1e-7 / 3.0e-6 / 3.1e-5 /
1.4e-4, and no non-finite output (the float64 bisection, on a dense grid: 5.2e-7 / 3.0e-6 /
3.1e-5 / 1.4e-4); through the CPU interpreter on a dense grid (CPU's ``y`` rounds otherwise),
1.3e-6 / 1.0e-5 / 7.7e-5 / 2.7e-4, as the bisection. Kernel and bisection differ by < 5e-7 for
``|x - X_MIN| > 0.01``. Float64: 1e-13 from the true ``g'`` away from ``X_MIN``. Time on an H200
for 16 x 512 x 4096 elements: 0.28 ms (float32 and bfloat16; stock's backward 0.10 / 0.064 ms):
the kernel is bound by arithmetic, not memory.

The table path (16-bit ``y``: bfloat16, float16). Such a ``y`` has only 65536 bit patterns, so ``g'``
given ``(y, branch)`` takes at most 2 x 65536 values. :func:`grad_table` holds them: for every
pattern and both branches, the float32 ``g'`` that the Newton kernel itself computes (its ``dx`` for
a float32 ``grad`` of ones), built by that kernel once per (dtype, device): 512 KiB, two launches
over 65536 elements, no host sync. ``_bwd_table_kernel`` then reads ``grad``, ``y``'s raw bits and
the branch, gathers ``g'`` and writes ``dx = grad * g'`` in float32 with one cast, as the Newton
kernel does, so ``dx`` is bit for bit the Newton kernel's (checked on every pattern through the
interpreter). Per element it costs one gather from an L2-resident table instead of two ``erf`` and
two ``exp``, and reads and writes the same bytes: on an H200, bf16 16 x 512 x 4096, 0.072 ms a
backward against the Newton kernel's 0.277 and stock's 0.064 (``python -m pmexp.bench.tempo``, row
``tempo_table``; runs/2026-11-30-tempo-native). For 16-bit CUDA activations eager code takes the same
gather through :mod:`pmexp.tempo.native`'s C++ node where it builds (0.060 ms). :func:`backward`
takes it by default where it holds the computation (``newton`` and ``fast`` at their defaults,
``grad`` not float64), in eager mode only: the registered op ``pmexp::tempo_gelu_backward``, which
torch.compile traces, keeps the Newton kernel, since a table built inside a traced triton_op would
become a traced constant.
Imported only when a CUDA tensor needs it (or by tests under ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

__all__ = [
    "KERNEL_DTYPES",
    "TABLE_DTYPES",
    "branch_bits",
    "backward",
    "grad_table",
    "every_16bit_value",
    "eager_table",
    "branch_threshold",
    "tempo_gelu_branch_bits",
    "tempo_gelu_backward",
]

KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_BYTES = 128  # mask bytes per program: 1024 elements
_NUM_WARPS = 4
TABLE_DTYPES = (torch.bfloat16, torch.float16)  # y dtypes whose g' can be a table (one entry per bit pattern)
_Y_PATTERNS = tl.constexpr(1 << 16)  # bit patterns of a 16-bit y: table entries per branch
# grad_table's tables, per (y dtype, device). A plain dict, not functools.cache: see pmexp/tempo/lazy.py.
_TABLES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

# Constants (Python floats); turned into COMPUTE-dtype scalars with tl.full, since a bare float
# literal would be rounded to float32 even in float64 arithmetic.
_X_MIN = tl.constexpr(-0.7517915246935645)  # root of g'; same value as pmexp.tempo.gelu.X_MIN
_Y_MIN = -0.16997120747990367  # g(X_MIN)
_Y_MIN_HI = tl.constexpr(float(torch.tensor(_Y_MIN, dtype=torch.float32)))  # exact in float32
_Y_MIN_LO = tl.constexpr(_Y_MIN - float(torch.tensor(_Y_MIN, dtype=torch.float32)))
_INV_A = tl.constexpr(1.0 / 0.21574699615702346)  # 1 / (g''(X_MIN) / 2)
_R2 = tl.constexpr(-0.29995395062028518)  # x - X_MIN = w + R2 w^2 + R3 w^3 + R4 w^4 + R5 w^5 + O(w^6)
_R3 = tl.constexpr(0.23547550237464102)
_R4 = tl.constexpr(-0.18203437742949452)
_R5 = tl.constexpr(0.15876905501087105)
_INV_PHI_X_MIN = tl.constexpr(1.0 / (0.5 * math.erfc(0.7517915246935645 / math.sqrt(2.0))))
_INV_SQRT2 = tl.constexpr(1.0 / math.sqrt(2.0))
_INV_SQRT_2PI = tl.constexpr(1.0 / math.sqrt(2.0 * math.pi))
_SQRT_2PI = tl.constexpr(math.sqrt(2.0 * math.pi))
_LOGISTIC = tl.constexpr(1.702)  # Phi(x) ~ 1 / (1 + exp(-1.702 x))
_W_RIGHT = tl.constexpr(0.65)  # series guess for -W_LEFT < w < W_RIGHT (x in about [-1.5, -0.18])
_W_LEFT = tl.constexpr(0.6)
_X_CLIP = tl.constexpr(40.0)  # phi(x) = 0 beyond, in float32 and float64: keeps x * x finite
_AS_P_SQRT1_2 = tl.constexpr(0.3275911 / math.sqrt(2.0))  # Abramowitz-Stegun 7.1.26 for erf(x / sqrt 2)
_AS_1 = tl.constexpr(0.254829592)
_AS_2 = tl.constexpr(-0.284496736)
_AS_3 = tl.constexpr(1.421413741)
_AS_4 = tl.constexpr(-1.453152027)
_AS_5 = tl.constexpr(1.061405429)


@triton.jit
def _c(value: tl.constexpr, COMPUTE: tl.constexpr):
    """A scalar constant in the compute dtype (exact in float64)."""
    return tl.full([], value, COMPUTE)


@triton.jit
def _cdf_pdf(x, COMPUTE: tl.constexpr, FAST: tl.constexpr):
    """``Phi(x)`` and ``phi(x)``, and ``x`` clipped to where ``phi`` is not 0.

    FAST: Abramowitz-Stegun 7.1.26 (``1 - Phi(|x|) = poly(t) phi(|x|) sqrt(pi / 2)``, abs error
    < 3e-7 in float32), sharing ``phi``'s exponential; else as torch: ``0.5 (1 + erf(x / sqrt 2))``.
    """
    xc = tl.minimum(tl.maximum(x, -_X_CLIP), _X_CLIP)
    e = tl.exp(-0.5 * xc * xc)
    if FAST:
        t = 1.0 / (1.0 + _AS_P_SQRT1_2 * tl.abs(x))
        tail = 0.5 * e * t * (_AS_1 + t * (_AS_2 + t * (_AS_3 + t * (_AS_4 + t * _AS_5))))
        cdf = tl.where(x >= 0.0, 1.0 - tail, tail)
    else:
        cdf = 0.5 * (1.0 + tl.erf(x * _c(_INV_SQRT2, COMPUTE)))
    return cdf, e * _c(_INV_SQRT_2PI, COMPUTE), xc


@triton.jit
def _gelu_grad_from_output(
    y, right, COMPUTE: tl.constexpr, NEWTON: tl.constexpr, W_FINAL: tl.constexpr, TINY: tl.constexpr, FAST: tl.constexpr
):
    """``g'(x)`` for the ``x`` with ``g(x) = y`` on the branch ``right`` (``x >= X_MIN``)."""
    x_min = _c(_X_MIN, COMPUTE)
    # distance to the minimum in the square-root coordinate; y may round to just below Y_MIN
    t = tl.maximum((y - _c(_Y_MIN_HI, COMPUTE)) - _c(_Y_MIN_LO, COMPUTE), 0.0)
    r = tl.sqrt(t * _c(_INV_A, COMPUTE))
    w = tl.where(right, r, -r)
    ws = tl.minimum(w, 1.0)  # the series is used for |w| < 0.65 only; this keeps other lanes finite
    series = x_min + ws * (
        1.0 + ws * (_c(_R2, COMPUTE) + ws * (_c(_R3, COMPUTE) + ws * (_c(_R4, COMPUTE) + ws * _c(_R5, COMPUTE))))
    )
    # left tail: L = -2 ln(|y| sqrt(2 pi)) >= x^2 (Mills' ratio), and the asymptotic guess
    big_l = -2.0 * tl.log(tl.maximum(-y, _c(TINY, COMPUTE)) * _c(_SQRT_2PI, COMPUTE))
    left_lo = -tl.sqrt(big_l)
    left_guess = -tl.sqrt(big_l + 2.0 * tl.log(big_l / (1.0 + big_l)))
    right_guess = y * (1.0 + tl.exp(-_c(_LOGISTIC, COMPUTE) * y))
    x = tl.where(right, tl.where(w < _W_RIGHT, series, right_guess), tl.where(w > -_W_LEFT, series, left_guess))
    lo = tl.where(right, tl.where(y < 0.0, y * _c(_INV_PHI_X_MIN, COMPUTE), y), left_lo)
    hi = tl.where(right, 2.0 * y, x_min)
    final = tl.abs(w) < W_FINAL
    for _ in tl.static_range(NEWTON):
        cdf, pdf, _xc = _cdf_pdf(x, COMPUTE, FAST)
        slope = cdf + x * pdf
        step = tl.where(slope != 0.0, (x * cdf - y) / slope, 0.0)
        x = tl.where(final, x, tl.minimum(tl.maximum(x - step, lo), hi))
    cdf, pdf, xc = _cdf_pdf(x, COMPUTE, FAST)
    slope = cdf + x * pdf
    step = tl.where((slope != 0.0) & ~final, (x * cdf - y) / slope, 0.0)
    x_next = tl.minimum(tl.maximum(x - step, lo), hi)
    return slope + pdf * (2.0 - xc * xc) * tl.where(final, 0.0, x_next - x)


@triton.jit
def _block(n, BYTES: tl.constexpr):
    """This program's ``BYTES x 8`` elements: mask-byte rows, bit columns, element indices, in bounds."""
    pid = tl.program_id(0).to(tl.int64)
    rows = pid * BYTES + tl.arange(0, BYTES)
    cols = tl.arange(0, 8)
    idx = rows[:, None] * 8 + cols[None, :]
    return rows, cols, idx, idx < n


@triton.jit
def _load_right(branch_ptr, rows, cols, idx, inb, n, PACKED: tl.constexpr):
    """The branch bit ``x >= X_MIN`` of a program's ``BYTES x 8`` elements (packed bytes or bool)."""
    if PACKED:
        byte = tl.load(branch_ptr + rows, mask=rows * 8 < n, other=0).to(tl.int32)
        right = ((byte[:, None] >> cols[None, :]) & 1) != 0
    else:
        right = tl.load(branch_ptr + idx, mask=inb, other=0) != 0
    return right


@triton.jit
def _bwd_kernel(
    g_ptr,
    y_ptr,
    branch_ptr,
    dx_ptr,
    n,
    BYTES: tl.constexpr,
    PACKED: tl.constexpr,
    NEWTON: tl.constexpr,
    W_FINAL: tl.constexpr,
    TINY: tl.constexpr,
    FAST: tl.constexpr,
    COMPUTE: tl.constexpr,
):
    rows, cols, idx, inb = _block(n, BYTES)
    right = _load_right(branch_ptr, rows, cols, idx, inb, n, PACKED)
    y = tl.load(y_ptr + idx, mask=inb, other=0).to(COMPUTE)
    g = tl.load(g_ptr + idx, mask=inb, other=0).to(COMPUTE)
    dx = g * _gelu_grad_from_output(y, right, COMPUTE, NEWTON, W_FINAL, TINY, FAST)
    tl.store(dx_ptr + idx, dx.to(dx_ptr.dtype.element_ty), mask=inb)


@triton.jit
def _bwd_table_kernel(g_ptr, y_bits_ptr, branch_ptr, table_ptr, dx_ptr, n, BYTES: tl.constexpr, PACKED: tl.constexpr):
    """``_bwd_kernel`` for 16-bit ``y`` with ``g'`` gathered from ``table`` (see :func:`grad_table`)."""
    rows, cols, idx, inb = _block(n, BYTES)
    right = _load_right(branch_ptr, rows, cols, idx, inb, n, PACKED)
    y_bits = tl.load(y_bits_ptr + idx, mask=inb, other=0).to(tl.int32) & 0xFFFF  # int16 sign-extends
    slope = tl.load(table_ptr + (y_bits + right.to(tl.int32) * _Y_PATTERNS), mask=inb, other=0.0)
    g = tl.load(g_ptr + idx, mask=inb, other=0).to(tl.float32)
    tl.store(dx_ptr + idx, (g * slope).to(dx_ptr.dtype.element_ty), mask=inb)


@triton.jit
def _branch_bits_kernel(x_ptr, bits_ptr, n, BYTES: tl.constexpr, THRESHOLD: tl.constexpr, COMPUTE: tl.constexpr):
    rows, cols, idx, inb = _block(n, BYTES)
    x = tl.load(x_ptr + idx, mask=inb, other=0).to(COMPUTE)
    right = (x >= _c(THRESHOLD, COMPUTE)) & inb
    byte = tl.sum(right.to(tl.int32) << cols[None, :], axis=1)
    tl.store(bits_ptr + rows, byte.to(tl.uint8), mask=rows * 8 < n)


def _compute_dtype(*tensors: torch.Tensor):
    return tl.float64 if any(t.dtype == torch.float64 for t in tensors) else tl.float32


@functools.cache
def branch_threshold(dtype: torch.dtype) -> float:
    """``X_MIN`` rounded to ``dtype``, as torch rounds the scalar in ``x >= X_MIN`` (exact in float32):
    ``x >= branch_threshold(x.dtype)`` in float32 is torch's ``x >= X_MIN``."""
    return float(torch.tensor(_X_MIN.value, dtype=torch.float64).to(dtype))


def _identity(kernel):
    return kernel


def branch_bits(x: torch.Tensor, wrap=_identity) -> torch.Tensor:
    """``pack_bits(x >= X_MIN)`` in one pass over ``x`` (1-D uint8, ``ceil(numel / 8)`` bytes).

    As in torch, the comparison is made in ``x``'s dtype: ``X_MIN`` rounded to it."""
    x = x.contiguous()
    n = x.numel()
    bits = torch.empty((n + 7) // 8, dtype=torch.uint8, device=x.device)
    if n:
        wrap(_branch_bits_kernel)[(triton.cdiv((n + 7) // 8, _BYTES),)](
            x, bits, n, BYTES=_BYTES, THRESHOLD=branch_threshold(x.dtype), COMPUTE=_compute_dtype(x),
            num_warps=_NUM_WARPS,
        )
    return bits


def every_16bit_value(dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """All 65536 values of a 16-bit ``dtype`` (NaNs and infinities included), in bit-pattern order:
    element ``i`` has the bits ``i`` (what :func:`grad_table` is indexed by)."""
    bits = torch.arange(_Y_PATTERNS.value, dtype=torch.int32, device=device)
    return torch.where(bits >= 1 << 15, bits - (1 << 16), bits).to(torch.int16).view(dtype)


def grad_table(dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """``g'`` for every 16-bit ``y`` of ``dtype`` on both branches, built once per (dtype, device).

    float32, ``2 * 65536`` entries (512 KiB: stays in L2), ``table[right * 65536 + (bits(y) & 0xFFFF)]``.
    Each entry is ``_bwd_kernel``'s own float32 ``g'`` (its ``dx`` for a float32 ``grad`` of ones,
    ``newton`` and ``fast`` at their defaults), so gathering it multiplies the same numbers.
    Building costs two launches of the Newton kernel over 65536 elements and no host sync.

    Raises:
        ValueError: ``dtype`` is not 16-bit.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # one key per GPU, however it was named
        device = torch.device("cuda", torch.cuda.current_device())
    key = (dtype, device)
    if key not in _TABLES:
        if dtype not in TABLE_DTYPES:
            raise ValueError(f"a g' table needs a 16-bit dtype {TABLE_DTYPES}, got {dtype}")
        y = every_16bit_value(dtype, device)
        ones = torch.ones(y.shape, dtype=torch.float32, device=device)
        halves = [backward(ones, y, torch.full(y.shape, right, device=device), table=False) for right in (False, True)]
        _TABLES[key] = torch.cat(halves)
    return _TABLES[key]


def eager_table(y: torch.Tensor) -> torch.Tensor | None:
    """:func:`grad_table` for ``y``'s dtype and device where eager code may use it now (see
    :func:`_table_by_default`: the arithmetic the table holds, not traced, not a capture's first
    build), else None. For :mod:`pmexp.tempo.native`, whose backward gathers from it."""
    return grad_table(y.dtype, y.device) if _table_by_default(y, tl.float32, None, False) else None


def _table_fits(y: torch.Tensor, compute, newton: int | None, fast: bool) -> bool:
    """Whether :func:`grad_table` holds what the Newton kernel computes here."""
    return y.dtype in TABLE_DTYPES and compute == tl.float32 and newton is None and not fast


def _table_by_default(y: torch.Tensor, compute, newton: int | None, fast: bool) -> bool:
    """The table where it fits, in eager mode only (traced, the table would be a constant of the
    graph), and not while a CUDA graph captures its first build (the build would be recorded, not run)."""
    if not _table_fits(y, compute, newton, fast) or torch.compiler.is_compiling():
        return False
    return not (y.is_cuda and torch.cuda.is_current_stream_capturing()) or (y.dtype, y.device) in _TABLES


def backward(
    grad: torch.Tensor,
    y: torch.Tensor,
    branch: torch.Tensor,
    newton: int | None = None,
    fast: bool = False,
    table: bool | None = None,
    wrap=_identity,
) -> torch.Tensor:
    """``grad * g'(x)`` with ``x`` recovered from ``y`` and ``branch`` (packed bits or bool).

    Returns a contiguous tensor of ``grad``'s shape and dtype. ``newton``: Newton steps before
    the final corrected evaluation (default 3 for float64, else 1). ``fast``: ``Phi`` from
    Abramowitz-Stegun 7.1.26 instead of ``erf`` (float32 and 16-bit inputs): on an H200, 16% less
    backward time, max abs error 1.6e-6 instead of 8.1e-7 for ``|x - X_MIN| > 0.1`` (same
    elsewhere); off by default. ``table``: gather ``g'`` from :func:`grad_table` instead of
    computing it, for 16-bit ``y`` under float32 arithmetic (``grad`` not float64) with ``newton``
    and ``fast`` at their defaults: the same float32 ``g'`` times the same ``grad``, so the same
    ``dx``. None (default): the table where it fits, eagerly (not while traced); False: never.

    Raises:
        ValueError: ``table=True`` where the table does not hold this computation.
    """
    grad, y, branch = grad.contiguous(), y.contiguous(), branch.contiguous()
    n = grad.numel()
    dx = torch.empty_like(grad, memory_format=torch.contiguous_format)
    compute = _compute_dtype(grad, y)
    if table is None:
        table = _table_by_default(y, compute, newton, fast)
    elif table and not _table_fits(y, compute, newton, fast):
        raise ValueError(
            f"table=True needs a 16-bit y {TABLE_DTYPES}, a grad that is not float64, newton=None and "
            f"fast=False; got y {y.dtype}, grad {grad.dtype}, newton={newton}, fast={fast} (table=None "
            "uses the table only where it fits)"
        )
    if not n:
        return dx
    grid = (triton.cdiv((n + 7) // 8, _BYTES),)
    packed = branch.dtype == torch.uint8
    if table:
        slopes = grad_table(y.dtype, y.device)
        wrap(_bwd_table_kernel)[grid](
            grad, y.view(torch.int16), branch, slopes, dx, n, BYTES=_BYTES, PACKED=packed, num_warps=_NUM_WARPS
        )
        return dx
    if newton is None:
        newton = 3 if compute == tl.float64 else 1
    wrap(_bwd_kernel)[grid](
        grad,
        y,
        branch,
        dx,
        n,
        BYTES=_BYTES,
        PACKED=packed,
        NEWTON=newton,
        W_FINAL=1e-3 if compute == tl.float64 else 0.05,
        TINY=1e-300 if compute == tl.float64 else 1e-37,  # a normal number: ln(|y|) stays finite
        FAST=fast,
        COMPUTE=compute,
        num_warps=_NUM_WARPS,
    )
    return dx


@triton_op("pmexp::tempo_gelu_branch_bits", mutates_args=())
def tempo_gelu_branch_bits(x: torch.Tensor) -> torch.Tensor:
    """The GELU branch mask ``x >= X_MIN`` packed 8 per byte."""
    return branch_bits(x, wrap_triton)


@triton_op("pmexp::tempo_gelu_backward", mutates_args=())
def tempo_gelu_backward(grad: torch.Tensor, y: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """Tempo GELU backward from the output ``y`` and the branch (uint8 bits or bool).

    Always the Newton kernel, never the table: this op is what torch.compile traces (gelu.py calls
    it only while compiling), and a table built inside a traced triton_op would become a traced
    constant of the graph instead of one cached tensor.
    """
    return backward(grad, y, branch, table=False, wrap=wrap_triton)
