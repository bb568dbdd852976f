"""Test tolerances derived from the arithmetic, not from one machine's results.

`python -m pytest -q tests/test_tempo_kernels.py tests/test_tempo.py` uses these.

Unit roundoff ``u = eps / 2`` (float32: 2**-24). Every bound is ``u`` times a count of roundings
(an operation count) or times a condition number, each stated where it is used.

GELU's gradient from its output (Tempo, :mod:`pmexp.tempo.gelu`). The backward sees ``y``, torch's
float32 ``gelu(x)``, not ``x``; it recovers ``x_hat`` with ``g(x_hat) = y`` and evaluates ``g'``:

- torch rounds ``y = x * 0.5 * (1 + erf(x / sqrt 2))``: the erf (<= 2 ulp), ``1 + erf`` (<= 2u,
  a number <= 2), the product with ``x`` (u |y|), ``x / sqrt 2`` (<= 0.5 u |x| after erf's slope):
  ``|dy| <= u (|y| + 2.5 |x|)``. A recovery that evaluates ``x * Phi(x) - y`` in the same precision
  (the Triton kernel's Newton residual) adds as much again.
- A change ``dy`` of the output moves ``g'`` by ``|g''/g'| |dy|`` to first order (factor 2 for
  ``g''`` changing between ``x`` and ``x_hat`` and second-order terms), and never by more than
  ``sqrt(2 max|g''| |dy|)`` (near the minimum ``g'^2 ~ 2 g'' (y - Y_MIN)``; ``max|g''| = 2 phi(0) < 0.8``).
- Evaluating ``g' = Phi + x phi`` costs ~8 roundings of numbers <= 1.13 in each of the two
  gradients compared, and ``grad * g'`` one more each: 20 u in all, a generous count.
"""

from __future__ import annotations

import math

import torch

__all__ = ["unit_roundoff", "ulp_distance", "gelu_grad_bound", "AS_7_1_26_PHI_ERR", "assert_within_rounding_scale"]

# Abramowitz & Stegun 7.1.26: |erf error| <= 1.5e-7, so Phi = (1 + erf(x / sqrt 2)) / 2 is off by
# <= 7.5e-8 (the book's bound), plus the float32 evaluation of its 5-term polynomial and exp:
# ~12 roundings of a tail <= 1/2 (6 u) and 1 - tail (u): 7.5e-8 + 7 * 2**-24 < 5e-7.
AS_7_1_26_PHI_ERR = 7.5e-8 + 7 * 2.0**-24


def unit_roundoff(dtype: torch.dtype) -> float:
    """``eps / 2``: the largest relative error of one rounding to ``dtype``."""
    return torch.finfo(dtype).eps / 2


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Steps between ``a`` and ``b`` along the representable values of their float dtype (int64).

    ``-0.0`` and ``0.0`` are 0 apart; the largest finite value and ``inf`` are 1 apart. Meaningless for
    NaNs: compare their positions first. Two float32 numbers much closer than a 16-bit ulp, each rounded
    once to 16 bits, are at most 1 apart (rounding is monotonic).
    """
    if a.dtype != b.dtype or not a.dtype.is_floating_point:
        raise ValueError(f"ulp_distance needs two tensors of one float dtype, got {a.dtype} and {b.dtype}")
    ints, bits = {2: (torch.int16, 16), 4: (torch.int32, 32), 8: (torch.int64, 64)}[a.element_size()]

    def ordered(t: torch.Tensor) -> torch.Tensor:  # sign-magnitude bit patterns -> integers in value order
        raw = t.contiguous().view(ints).long()
        magnitude = raw & ((1 << (bits - 1)) - 1)
        return torch.where(raw < 0, -magnitude, magnitude)

    return (ordered(a) - ordered(b)).abs()


def gelu_grad_bound(
    x: torch.Tensor, dtype: torch.dtype, dy_ulps: float, eval_ulps: float = 20.0, cdf_err: float = 0.0
) -> torch.Tensor:
    """Per-element bound on ``|g'(x_hat) - g'(x)|`` (float64), see the module docstring.

    Args:
        x: the true inputs.
        dtype: the precision ``y`` was rounded to and ``g'`` evaluated in.
        dy_ulps: roundings of ``y`` in units of ``u (|y| + |x|)``: 2.5 for torch's ``y`` alone, 5 when
            the recovery's own residual is in the same precision.
        eval_ulps: roundings of ``g'`` and of ``grad * g'`` over both gradients compared.
        cdf_err: an absolute error of ``Phi`` used by the recovery (an approximated CDF): it enters
            ``g'`` directly and ``y``'s residual times ``|x|``.
    """
    u = unit_roundoff(dtype)
    x = x.double()
    phi = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    g1 = 0.5 * torch.erfc(-x / math.sqrt(2)) + x * phi
    g2 = phi * (2 - x * x)
    dy = dy_ulps * u * ((x * 0.5 * torch.erfc(-x / math.sqrt(2))).abs() + x.abs()) + cdf_err * x.abs()
    linear = torch.where(g1 != 0, 2 * g2.abs() / g1.abs().clamp(min=1e-300) * dy, torch.inf)
    return eval_ulps * u + cdf_err + torch.minimum(linear, torch.sqrt(2 * 0.8 * dy))


def scaled_sin_grad_bound(x: torch.Tensor, p: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bound on two float evaluations of ``d/dx sin(x / (1 - p)) = cos(x / (1 - p)) / (1 - p)``.

    The argument: ``x * fl(1 / (1 - p))`` against ``x / (1 - p)``, <= 3 u |arg| apart (the scale's
    rounding and one rounding each); ``cos`` <= 3.5 ulp (Sleef's u35 variants, the loosest Inductor
    uses; libdevice: 2) in each: 7 u; the final scaling, one rounding each: 2 u. Times ``1 / (1 - p)``,
    and a factor 2 for second-order terms.
    """
    arg = x.double().abs() / (1 - p)
    return 2 * (3 * arg + 9) * unit_roundoff(dtype) / (1 - p)


def assert_within_rounding_scale(got: dict, low: dict, high: dict, dtype: torch.dtype, factor: float = 4.0) -> None:
    """Whole-model gradients: per parameter, ``|got - high| <= factor (|low - high| + u |high|)`` in 2-norms.

    ``low`` is the stock model's gradient in ``got``'s precision, ``high`` the same stock computation in
    float64 (same masks): ``|low - high|`` is the arithmetic's own error on this machine, measured, so no
    constant here was fitted to one machine. Per-element bounds do not exist for a whole network (a sum
    of terms of any sign has no bounded condition), but norm-wise the variant's backward performs the
    stock backward's operations plus, per recovered tensor (Tempo: GELU's input from its output,
    LayerNorm's from its output), one more evaluation of that layer's forward of no worse condition:
    at most about twice stock's roundings, each amplified by the same downstream Jacobians, plus the
    ``u |high|`` floor for a parameter whose stock error happens to cancel. Factor 4 = 2 x that, for the
    first-order error model.
    """
    u = unit_roundoff(dtype)
    for name, ref in high.items():
        err = (got[name].double() - ref).norm().item()
        scale = (low[name].double() - ref).norm().item() + u * ref.norm().item()
        assert err <= factor * scale, f"{name}: |got - float64| = {err:.3g} > {factor} x {scale:.3g}"
