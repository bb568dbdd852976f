"""LayerNorm that keeps its output and ``rstd`` (plus weight and bias) instead of its input.

With ``x_hat = (x - mean) * rstd`` and ``y = x_hat * w + b`` (over the normalized trailing dims),
backward needs ``x_hat``, which is recovered as ``(y - b) / w``; the rest is the textbook
LayerNorm backward (``N`` = number of normalized elements, ``gw = g * w``), which torch's fused
``native_layer_norm_backward`` computes when handed ``x_hat`` with mean 0 and rstd 1 (``dx`` then
times ``rstd``)::

    dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat))
    dw = sum over leading dims of g * x_hat
    db = sum over leading dims of g

Saved: ``y`` (also saved by the next ``nn.Linear``, so it costs nothing extra there), ``rstd``
(one float per row), ``w`` and ``b`` (parameters). The input is freed after forward. The
recovered ``x_hat`` carries the rounding of ``y`` divided by ``|w|``, so gradients match stock
LayerNorm up to rounding, not bitwise. A weight entry equal to zero loses ``x_hat`` for that
feature, so the forward pass checks the weight: on CPU it raises ``ValueError``; on CUDA (and
under ``torch.compile``) the check is ``torch._assert_async``, which never waits for the device:
a zero entry fails at the next synchronisation (on CUDA as a device-side assert, which leaves
the CUDA context unusable) instead of silently producing NaN gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from pmexp.tempo.lazy import triton_module
from pmexp.tempo.native import load as load_native  # builds the extension at its first call, not at import

__all__ = ["layer_norm", "TempoLayerNorm"]


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class _TempoLayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, normalized_shape, weight, bias, eps):
        y, _, rstd = torch.native_layer_norm(x, normalized_shape, weight, bias, eps)
        ctx.dims = tuple(range(x.dim() - len(normalized_shape), x.dim()))
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        ctx.save_for_backward(y, rstd, weight, bias)
        return y

    @staticmethod
    def backward(ctx, grad):
        y, rstd, weight, bias = ctx.saved_tensors
        kernels = triton_module("ln_kernels") if y.is_cuda and not torch.compiler.is_compiling() else None
        if kernels is not None and kernels.supports(grad, y, weight, bias, ctx.dims):
            dx, dw, db = kernels.backward(grad, y, rstd, weight, bias)  # one pass: y and grad read once
            return dx, None, dw if ctx.needs_input_grad[2] else None, db if ctx.needs_input_grad[3] else None, None
        op = _opmath(y.dtype)
        # x_hat from the output, in opmath: two elementwise kernels (in place after the first).
        x_hat = y.to(op) if bias is None else torch.sub(y.to(op), bias.to(op))
        if weight is not None:
            x_hat = x_hat.div_(weight.to(op)) if x_hat is not y else x_hat / weight.to(op)
        # torch's fused LayerNorm backward, handed x_hat as its input with mean 0 and rstd 1, computes
        # gw - mean(gw) - x_hat * mean(gw * x_hat) and dw, db in its own reductions: 2-3 kernels instead
        # of ~12 unfused ops with activation-sized float32 temporaries (the torch version this replaces).
        # Times the true rstd after: one rounding more than stock, which multiplies inside.
        dx, dw, db = torch.ops.aten.native_layer_norm_backward(
            grad.to(op), x_hat, [x_hat.shape[d] for d in ctx.dims], torch.zeros_like(rstd, dtype=op),
            torch.ones_like(rstd, dtype=op), None if weight is None else weight.to(op),
            None if bias is None else bias.to(op),
            [ctx.needs_input_grad[0], ctx.has_weight and ctx.needs_input_grad[2],
             ctx.has_bias and ctx.needs_input_grad[3]])
        dx = dx.mul_(rstd.to(op)).to(grad.dtype) if dx is not None else None
        dw = dw.to(weight.dtype) if dw is not None else None
        db = db.to(bias.dtype) if db is not None else None
        return dx, None, dw, db, None


_ZERO_WEIGHT = (
    "Tempo layer_norm recovers x_hat as (y - bias) / weight, but weight has {} entries equal to 0; "
    "keep torch's nn.LayerNorm for this module"
)


def _check_weight(weight: torch.Tensor) -> None:
    """Reject zero weight entries, without waiting for the device where that would cost a sync."""
    if weight.is_cuda or torch.compiler.is_compiling():
        # weight.all() is (weight != 0).all() in one kernel (a float is true where nonzero, -0.0 and
        # NaN included): 2 launches a call, not 3 (BERT-large: 48 LayerNorms a step)
        torch._assert_async(weight.all(), _ZERO_WEIGHT.format("some"))
    elif bool((weight == 0).any()):  # CPU: reading the answer costs nothing
        raise ValueError(_ZERO_WEIGHT.format(int((weight == 0).sum())))


def _native_layer_norm(x: torch.Tensor, normalized_shape: tuple[int, ...], weight: torch.Tensor | None,
                       bias: torch.Tensor | None, eps: float) -> torch.Tensor | None:
    """The C++ node of :mod:`pmexp.tempo.native` where it serves the call (eager CUDA, the last dim with
    weight and bias, <= 4096 elements, float32/16-bit), else None."""
    if not (x.is_cuda and weight is not None and bias is not None and len(normalized_shape) == 1
            and x.dim() >= 1 and x.shape[-1] == normalized_shape[0]) or torch.compiler.is_compiling():
        return None
    module = load_native()
    if module is None or not module.layer_norm_supports(x, weight, bias):
        return None
    return module.layer_norm(x, weight, bias, eps)  # checks the weight on the device, as _check_weight


def layer_norm(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    native: bool | None = None,
) -> torch.Tensor:
    """``F.layer_norm`` (same output, bit for bit) whose backward keeps the output, not the input.

    ``native``: None (default): on CUDA, where it serves the call (the last dim, weight and bias,
    <= 4096 elements), the C++ autograd node of :mod:`pmexp.tempo.native` (a CUDA port of the Triton
    backward, at less host cost) when it builds; False: never.

    Raises:
        ValueError: if ``weight`` has an entry equal to zero (``x_hat`` could not be recovered);
            on CUDA and under ``torch.compile`` a ``RuntimeError`` at a later sync instead.
    """
    normalized_shape = tuple(normalized_shape)
    if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)
    if native is not False:
        y = _native_layer_norm(x, normalized_shape, weight, bias, eps)
        if y is not None:
            return y
    if weight is not None:
        _check_weight(weight)
    return _TempoLayerNorm.apply(x, normalized_shape, weight, bias, eps)


class TempoLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` whose backward keeps its output and ``rstd`` instead of its input.

    A subclass, so ``state_dict`` keys, ``isinstance`` checks and weight initialisation are
    unchanged. Same outputs as ``nn.LayerNorm``; gradients equal up to rounding.

    Args: as ``nn.LayerNorm``.

    Shape:
        Input and output: ``(*, *normalized_shape)``.

    Example:
        >>> ln = TempoLayerNorm(32)
        >>> y = ln(torch.randn(4, 32, requires_grad=True))
        >>> y.sum().backward()
    """

    @classmethod
    def from_layer_norm(cls, module: nn.LayerNorm) -> TempoLayerNorm:
        """A ``TempoLayerNorm`` sharing ``module``'s parameters (same objects, same device)."""
        new = cls(module.normalized_shape, module.eps, elementwise_affine=False, bias=False)
        new.elementwise_affine = module.elementwise_affine
        new.weight, new.bias = module.weight, module.bias
        new.train(module.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
