"""Exact (erf) GELU that keeps its output and a 1-bit branch mask instead of its input.

The math. ``y = g(x) = x * Phi(x)`` with ``Phi`` the standard normal CDF and ``phi`` its density;
``g'(x) = Phi(x) + x * phi(x)``. ``g'`` has one root, ``X_MIN = -0.7517915246935645``, where ``g``
takes its minimum ``Y_MIN = -0.16997120747990369``; ``g`` decreases on ``(-inf, X_MIN]`` (from 0
to ``Y_MIN``) and increases on ``[X_MIN, inf)``. So ``y`` alone does not determine ``x`` (every
``y`` in ``(Y_MIN, 0)`` has two preimages), but ``y`` plus one bit, ``x >= X_MIN``, does. Backward
recovers ``x`` by bisection on that branch and evaluates ``g'(x)``:

- right branch, ``y >= 0``: ``Phi(x) in [1/2, 1]``, so ``x = y / Phi(x)`` lies in ``[y, 2y]``;
- right branch, ``y < 0``: ``x in [X_MIN, 0]``, ``Phi(x) in [Phi(X_MIN), 1/2]``, so ``x`` lies in
  ``[y / Phi(X_MIN), 2y]`` (a bracket of fixed *relative* width, so small ``|x|`` keeps its
  relative precision);
- left branch: ``x in [-40, X_MIN]`` (below -40 ``g`` and ``g'`` are 0 in float64).

Bisection runs in float64 (64 halvings for float64 inputs, 40 otherwise: far below the input
dtype's rounding) and is branch-free, so it is exact up to rounding wherever ``g`` is
well conditioned. Near ``X_MIN`` it is not, and no method can be: ``g'(x) ~ sqrt(2 g''(X_MIN)
(y - Y_MIN))``, so a rounding error ``d`` in ``y`` becomes an error of about ``sqrt(2 * 0.43 * d)``
in ``g'`` (float32: up to ~3e-4 absolute for ``x`` within ~1e-3 of ``X_MIN``, where the true
``g'`` is itself ~4e-4). Elsewhere the error is the rounding of ``y`` times ``g''/g'``. Measured
against torch's float32 gradient at the true ``x`` (2.2M points, dense near ``X_MIN``), the max
absolute error is 1.2e-6 for ``|x - X_MIN| > 0.1``, 1.0e-5 for ``> 0.01``, 7.7e-5 for ``> 1e-3``
and 2.7e-4 closer (torch's own error is ~3e-7; on an H200, against CUDA's gradient: 5.2e-7,
3.0e-6, 3.1e-5, 1.4e-4). This is the price of not keeping ``x``; model gradients stay within
float32 noise of stock (see ``tests/test_tempo.py``).

Cost. The torch path here (CPU, and the reference) does ~40 erf evaluations per element over
float64 temporaries of the activation's size. CUDA tensors (with triton installed) use the fused
kernels of :mod:`pmexp.tempo.kernels` instead: forward packs the branch bits in one pass over
``x`` (``y`` is still torch's ``F.gelu``), backward reads ``grad``, ``y`` and the bits and
recovers ``x`` in registers from a first guess and one Newton step (two erf per element in
float32), with the same accuracy as the bisection, and allocates nothing but ``dx``. On an H200,
for 16 x 512 x 4096 float32 elements, backward takes 0.28 ms there against 70 ms here (stock
GELU's backward: 0.10 ms); ``python -m pmexp.bench.tempo`` measures it. For 16-bit tensors, eager
backward gathers ``g'`` instead from a 512 KiB table of that kernel's own float32 values, one per bit
pattern of ``y`` and branch (the same gradient bits, no ``erf``; H200: 0.072 ms), through a C++
autograd node and CUDA kernels (:mod:`pmexp.tempo.native`: 0.060 ms, and 149 against the Python
node's 277 us of host time a call; runs/2026-11-30-tempo-native); under torch.compile it keeps the
Newton kernel.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pmexp.masks import pack_bits, unpack_bits
from pmexp.tempo.lazy import triton_module
from pmexp.tempo.native import load as load_native  # builds the extension at its first call, not at import

__all__ = ["X_MIN", "Y_MIN", "gelu", "TempoGELU", "gelu_input_from_output"]

X_MIN = -0.7517915246935645  # root of Phi(x) + x phi(x) (Newton in float64)
Y_MIN = -0.16997120747990369  # X_MIN * Phi(X_MIN)
_PHI_X_MIN = 0.5 * (1.0 + math.erf(X_MIN / math.sqrt(2.0)))
_LEFT_LO = -40.0
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TABLE_DTYPES = (torch.bfloat16, torch.float16)  # pmexp.tempo.kernels.TABLE_DTYPES (that module imports triton)


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * _INV_SQRT2)  # erfc, not 1 + erf: no cancellation in the left tail


def gelu_input_from_output(y: torch.Tensor, right: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """Recover ``x`` (float64) from ``y = gelu(x)`` and the branch bit ``right = x >= X_MIN``.

    Args:
        y: GELU outputs, any shape and floating dtype.
        right: bool tensor of ``y``'s shape.
        steps: bisection steps; default 64 for float64 ``y``, else 40.

    Returns:
        float64 tensor of ``y``'s shape.
    """
    if steps is None:
        steps = 64 if y.dtype == torch.float64 else 40
    y = y.to(torch.float64).clamp(min=Y_MIN)  # a rounded y may sit just below the true minimum
    lo = torch.where(right, torch.where(y < 0, y / _PHI_X_MIN, y), torch.full_like(y, _LEFT_LO))
    hi = torch.where(right, 2.0 * y, torch.full_like(y, X_MIN))
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        above = mid * _cdf(mid) > y  # g(mid) > y: on the right branch the root is below mid
        go_down = above == right
        hi = torch.where(go_down, mid, hi)
        lo = torch.where(go_down, lo, mid)
    return 0.5 * (lo + hi)


def _gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    return _cdf(x) + x * torch.exp(-0.5 * x * x) * _INV_SQRT_2PI


def _kernels():
    """The Triton kernels module, or None without triton (imported on first use)."""
    return triton_module("kernels")


if torch.cuda.is_available():  # import before any torch.compile trace needs it
    _kernels()


def _uses_kernel(x: torch.Tensor) -> bool:
    kernels = _kernels() if x.is_cuda else None
    return kernels is not None and x.dtype in kernels.KERNEL_DTYPES


def _branch_bits(x: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():
        return torch.ops.pmexp.tempo_gelu_branch_bits(x)
    return _kernels().branch_bits(x)


def _kernel_backward(grad: torch.Tensor, y: torch.Tensor, branch: torch.Tensor, table: bool | None) -> torch.Tensor:
    if torch.compiler.is_compiling():  # the registered op: the Newton kernel (no table in a traced graph)
        return torch.ops.pmexp.tempo_gelu_backward(grad, y, branch)
    return _kernels().backward(grad, y, branch, table=table)


def _native_gelu(x: torch.Tensor) -> torch.Tensor | None:
    """Tempo GELU by the C++ extension (:mod:`pmexp.tempo.native`) where it serves ``x`` (eager CUDA,
    16-bit, the g' table usable now), else None."""
    if x.dtype not in _TABLE_DTYPES or torch.compiler.is_compiling():
        return None
    module, kernels = load_native(), _kernels()
    slopes = kernels.eager_table(x) if module is not None else None
    return None if slopes is None else module.gelu(x, slopes, kernels.branch_threshold(x.dtype))


class _TempoGELU(torch.autograd.Function):
    """Forward: torch's exact GELU. Saves the output and the branch bit (packed or bool)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, packed: bool, kernel: bool, table: bool | None) -> torch.Tensor:
        y = torch.nn.functional.gelu(x)
        if kernel and packed:
            branch = _branch_bits(x)
        else:
            branch = x >= X_MIN
            if packed:
                branch = pack_bits(branch)
        ctx.packed, ctx.kernel, ctx.table, ctx.shape = packed, kernel, table, x.shape
        ctx.save_for_backward(y, branch)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, mask = ctx.saved_tensors
        if ctx.kernel:
            return _kernel_backward(grad, y, mask, ctx.table), None, None, None
        right = unpack_bits(mask, ctx.shape) if ctx.packed else mask
        x = gelu_input_from_output(y, right)
        return grad * _gelu_derivative(x).to(grad.dtype), None, None, None


def gelu(
    x: torch.Tensor, packed: bool = True, kernel: bool | None = None, table: bool | None = None,
    native: bool | None = None,
) -> torch.Tensor:
    """Exact GELU (``approximate='none'``) keeping ``y`` and 1 bit per element for backward.

    Args:
        x: input of any shape and floating dtype.
        packed: keep the branch mask as bits (True) or as a bool tensor (False, Tempo's original).
        kernel: None (default): the Triton kernels of :mod:`pmexp.tempo.kernels` for CUDA tensors
            of their dtypes when triton is importable, else the torch path; False: always the
            torch path (the reference); True: always the kernels (CPU tensors only under
            ``TRITON_INTERPRET=1``).
        table: the kernels' backward for 16-bit ``x`` (see :func:`pmexp.tempo.kernels.backward`):
            None (default): ``g'`` gathered from a table of the Newton kernel's own values, eagerly
            (the same gradient bits), the Newton kernel under torch.compile; True: the table
            eagerly (an error for other dtypes or without the kernels); False: always the Newton
            kernel.
        native: None (default): where the kernels, the bits and the table serve (16-bit CUDA, eager),
            the C++ autograd node of :mod:`pmexp.tempo.native` (the same bits and gradient at less
            host cost) when it builds; False: never (the Python node and Triton launches).

    Returns:
        ``torch.nn.functional.gelu(x)``, bit for bit.

    Raises:
        ValueError: ``table=True`` for ``x`` that is not 16-bit, or with the torch path.
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.nn.functional.gelu(x)
    if kernel is None:
        kernel = _uses_kernel(x)
    if table and not (kernel and x.dtype in _TABLE_DTYPES):
        raise ValueError(
            f"table=True needs the Triton kernels (kernel={kernel}) and a 16-bit x (bfloat16, float16), got "
            f"{x.dtype}; pass table=None to use the table where it fits"
        )
    if kernel and packed and table is not False and native is not False and x.is_cuda:
        y = _native_gelu(x)
        if y is not None:
            return y
    return _TempoGELU.apply(x, packed, kernel, table)


class TempoGELU(nn.Module):
    """``nn.GELU()`` whose backward needs only its output and a 1-bit branch mask.

    Saves memory when the output is kept anyway (the next ``nn.Linear`` saves it as its input):
    the input is then freed after forward. Same outputs as ``nn.GELU()``; gradients equal up to
    rounding (see the module docstring for the conditioning near ``X_MIN``).

    Args:
        packed: keep the branch mask as bits (default) or as bool (Tempo's original).

    Shape:
        Input and output: any shape, same dtype.

    Example:
        >>> act = TempoGELU()
        >>> y = act(torch.randn(4, 16, requires_grad=True))
        >>> y.sum().backward()
    """

    def __init__(self, packed: bool = True) -> None:
        super().__init__()
        self.packed = packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu(x, self.packed)

    def extra_repr(self) -> str:
        return f"packed={self.packed}"
