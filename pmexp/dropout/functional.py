"""Dropout variants as autograd functions behind one entry point, :func:`dropout`.

Variants (``VARIANTS``):

- ``standard``: torch's own ``F.dropout`` (the baseline: a 1-byte bool mask on CUDA, a noise
  tensor of the input's dtype on CPU).
- ``packed_exact``: the mask drawn exactly as torch draws it, kept as bits. Outputs and
  gradients are bit-identical to ``nn.Dropout`` under the same seed (CUDA: ``native_dropout`` and
  ``native_dropout_backward``; CPU: torch's ``bernoulli_`` noise and multiply).
- ``packed``: on CUDA one fused Triton kernel per pass (:mod:`pmexp.dropout.kernels`), Philox
  randoms, mask kept as bits; statistically, not bitwise, equal to torch. Elsewhere (and for
  dtypes the kernel does not take) it is ``packed_exact``.
- ``seeded``: keeps no mask, only how to draw it again. CUDA: the fused kernel's seed (a Python
  int; an 8-byte tensor under ``torch.compile`` and CUDA-graph capture). CPU: a snapshot of the
  default generator's state, so the mask, output and gradient are bit-identical to ``nn.Dropout``.

On CUDA, ``packed`` and ``seeded`` run in C++ (:mod:`pmexp.dropout.native`: autograd node, seed
and launch without Python) where the extension builds, else through the Triton kernels; both draw
the same mask from the same seed. :func:`dropout_add` fuses ``dropout(x) + residual`` (BERT's
residual branches) into one pass for those two variants.

CUDA graphs (``torch.cuda.graph``, ``make_graphed_callables``, ``torch.compile(mode=
"reduce-overhead")``): while a stream is capturing, the seed is drawn on the device from the CUDA
generator's graph-safe Philox state, so every replay draws a fresh mask and ``seeded``'s backward
reads the forward's seed from the same 8 bytes.

Randomness always comes from torch's default generators, so activation checkpointing (which
restores them) recomputes the same mask. Edge cases follow torch: in eval mode, at ``p == 0``
and for empty tensors the input is returned as is; at ``p == 1`` torch's own dropout gives zeros.
"""

from __future__ import annotations

import functools
import numbers

import torch
import torch.nn.functional as F

from pmexp.dropout import traced
from pmexp.masks import pack_bits, unpack_bits

__all__ = ["VARIANTS", "dropout", "dropout_add", "check_p", "check_variant"]

VARIANTS = ("standard", "packed_exact", "packed", "seeded")


_KERNELS = None


def _kernels():
    """The Triton kernels module, imported on first use (so CPU-only users never import triton)."""
    global _KERNELS
    if _KERNELS is None:
        from pmexp.dropout import kernels

        _KERNELS = kernels
    return _KERNELS


if torch.cuda.is_available():  # import before any torch.compile trace needs it
    try:
        _kernels()
    except ImportError:  # no triton: CUDA tensors use packed_exact
        pass


def _capturing(x: torch.Tensor) -> bool:
    """Whether ``x``'s device is capturing a CUDA graph now (CPU-only torch builds cannot even ask)."""
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def _draw_seed(x: torch.Tensor) -> torch.Tensor | int:
    """A Philox seed from torch's default generators (so checkpointing replays it).

    Eager: an int from the CPU generator (no device kernel, no sync: ~1/5 of a device draw's
    launch cost). Traced, or while a CUDA graph is being captured (an int would be baked into the
    graph and replayed forever): a 1-element int64 tensor from the device generator, whose
    graph-safe Philox state gives a fresh seed on every replay.
    """
    if torch.compiler.is_compiling() or _capturing(x):
        return torch.randint(0, 2**62, (1,), device=x.device, dtype=torch.int64)
    return int(torch.empty((), dtype=torch.int64).random_(0, 2**62))


def _fused_forward(x: torch.Tensor, seed: torch.Tensor | int, p: float, store_bits: bool):
    """The fused kernel: a direct launch in eager mode, the registered custom op when traced."""
    if isinstance(seed, torch.Tensor):
        return torch.ops.pmexp.fused_dropout(x, seed, p, store_bits)
    return _kernels().forward(x, seed, p, store_bits)


def _bits_backward(grad: torch.Tensor, bits: torch.Tensor, p: float, out_dtype: torch.dtype | None = None,
                   ) -> torch.Tensor:
    """``grad * keep / (1 - p)`` from bits; ``out_dtype``: the result rounded once to it from the
    float32 product (eager only; traced, the op's result is cast after, the same numbers)."""
    if torch.compiler.is_compiling():
        out = torch.ops.pmexp.bits_dropout_backward(grad if out_dtype is None else grad.to(
            torch.promote_types(grad.dtype, out_dtype)), bits, p)
        return out if out_dtype is None else out.to(out_dtype)
    return _kernels().backward(grad, bits, p, out_dtype=out_dtype)


def check_p(p: float) -> float:
    """Return ``p`` as a float, or raise naming it: ``TypeError`` for a type that is not a real number
    (a bool, a str, a tensor: pass ``float(p)``), ``ValueError`` outside [0, 1] (NaN too).
    NumPy scalars are real numbers and are accepted."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout probability has to be a real number (int or float), but got a "
                        f"{type(p).__module__}.{type(p).__qualname__}: {p!r}; pass float(p)")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
    return float(p)


def check_variant(variant: str) -> str:
    """Return ``variant``, or raise ``ValueError`` listing the valid ones."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown dropout variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


def _cpu_noise_value(p: float, dtype: torch.dtype) -> torch.Tensor:
    """The kept-element value of torch's CPU noise, ``1 / (1 - p)`` rounded as torch rounds it."""
    return torch.ones((), dtype=dtype).div_(1 - p)


def _cpu_noise(x: torch.Tensor, p: float) -> torch.Tensor:
    """Exactly torch's CPU dropout noise: ``empty_like(x).bernoulli_(1 - p).div_(1 - p)``."""
    return torch.empty_like(x).bernoulli_(1 - p).div_(1 - p)


def _cpu_noise_replay(rng_state: torch.Tensor, noise: torch.Tensor) -> tuple:
    """What :func:`_replay_cpu_noise` needs to draw ``noise`` again: the generator's state before the draw,
    and the noise's shape, strides and dtype. bernoulli_ fills in memory order, so the redraw must use the
    forward noise's own strides (``empty_like(x)``: x's layout when dense), never the gradient's."""
    return rng_state, noise.shape, noise.stride(), noise.dtype


def _replay_cpu_noise(replay: tuple, p: float) -> torch.Tensor:
    """The CPU noise a forward drew, drawn again from :func:`_cpu_noise_replay`'s snapshot, bit for bit."""
    rng_state, shape, stride, dtype = replay
    generator = torch.Generator()
    generator.set_state(rng_state)
    return torch.empty_strided(shape, stride, dtype=dtype).bernoulli_(1 - p, generator=generator).div_(1 - p)


class _PackedExact(torch.autograd.Function):
    """Torch's own mask, saved as bits."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        ctx.p, ctx.shape, ctx.dtype = p, x.shape, x.dtype
        if x.device.type == "cpu":
            noise = _cpu_noise(x, p)
            y = x * noise
            mask = noise.ne(0)
        else:
            y, mask = torch.ops.aten.native_dropout(x, p, True)
        ctx.save_for_backward(pack_bits(mask))
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (bits,) = ctx.saved_tensors
        mask = unpack_bits(bits, ctx.shape)
        if grad.device.type == "cpu":
            noise = mask.to(ctx.dtype).mul_(_cpu_noise_value(ctx.p, ctx.dtype))
            return grad * noise, None
        return torch.ops.aten.native_dropout_backward(grad, mask, 1.0 / (1.0 - ctx.p)), None


class _FusedPacked(torch.autograd.Function):
    """Fused Triton kernel; mask saved as bits (CUDA)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        y, bits = _fused_forward(x, _draw_seed(x), p, True)
        ctx.p = p
        ctx.save_for_backward(bits)
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (bits,) = ctx.saved_tensors
        return _bits_backward(grad, bits, ctx.p).view(grad.shape), None


class _SeededCuda(torch.autograd.Function):
    """Fused Triton kernel; keeps only the seed (an int; an 8-byte tensor when traced) and draws
    the mask again in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        seed = _draw_seed(x)
        y, _ = _fused_forward(x, seed, p, False)
        ctx.p = p
        if isinstance(seed, torch.Tensor):
            ctx.save_for_backward(seed)
        else:
            ctx.seed = seed
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        seed = ctx.saved_tensors[0] if ctx.saved_tensors else ctx.seed
        dx, _ = _fused_forward(grad, seed, ctx.p, False)
        return dx.view(grad.shape), None


class _SeededCpu(torch.autograd.Function):
    """CPU: snapshot the default generator (its seed and position), draw torch's noise, and
    draw it again from the snapshot in backward. Bit-identical to ``nn.Dropout``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        rng_state = torch.get_rng_state()
        noise = _cpu_noise(x, p)
        ctx.p, ctx.replay = p, _cpu_noise_replay(rng_state, noise)
        return x * noise

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * _replay_cpu_noise(ctx.replay, ctx.p), None


def _uses_kernel(x: torch.Tensor) -> bool:
    if not x.is_cuda:
        return False
    try:
        return x.dtype in _kernels().KERNEL_DTYPES
    except ImportError:
        return False


def _native_kernels(x: torch.Tensor):
    """The C++ extension where it serves ``x`` (eager CUDA, a kernel dtype), else None."""
    if x.dtype not in _NATIVE_DTYPES or torch.compiler.is_compiling():
        return None
    return _native_load()()


@functools.cache
def _native_load():
    # imported on first use, so `python -m pmexp.dropout.native` runs a module not yet imported
    from pmexp.dropout import native

    return native.load


_NATIVE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, variant: str = "packed") -> torch.Tensor:
    """Dropout whose mask is kept in 1 bit per element (or not at all, for ``seeded``).

    Args:
        x: input of any shape and floating dtype.
        p: probability of an element being zeroed. Default: 0.5.
        training: apply dropout if True, else return ``x``. Default: True.
        variant: one of ``VARIANTS``. Default: ``"packed"``.

    Returns:
        A tensor of ``x``'s shape and dtype.

    Raises:
        ValueError: for ``p`` outside [0, 1] or an unknown variant.
        TypeError: for ``p`` that is not a Python or NumPy real number.
        NotImplementedError: ``seeded`` on a device without the Triton kernels (not CPU or CUDA).
    """
    if type(p) is not float or not 0.0 < p < 1.0:  # the common case skips the full check
        p = check_p(p)
    if variant == "standard":
        return F.dropout(x, p, training)
    if not training or p == 0.0 or x.numel() == 0:
        check_variant(variant)
        return x
    if x.is_cuda and (variant == "packed" or variant == "seeded") and p < 1.0:
        kernels = _native_kernels(x)  # eager CUDA: the whole call in C++
        if kernels is not None:
            return kernels.packed(x, p) if variant == "packed" else kernels.seeded(x, p)
    check_variant(variant)
    if p == 1.0 or not x.is_floating_point():
        return F.dropout(x, p, training)  # torch's zeros (no mask kept) and its dtype errors
    if torch.compiler.is_compiling() and traced.use_traced():  # ops Inductor can fuse and partition
        if variant == "seeded":
            return traced.seeded_traced(x, p)
        # packed on CUDA draws its own randoms (as its eager kernel does); packed_exact, and any CPU
        # tensor (bit-exact with eager there), the mask torch's dropout draws.
        return traced.packed_traced(x, p, exact=variant == "packed_exact" or x.device.type == "cpu")
    if variant == "packed" and _uses_kernel(x):
        return _FusedPacked.apply(x, p)
    if variant == "seeded":
        if x.device.type == "cpu":
            return _SeededCpu.apply(x, p)
        if _uses_kernel(x):
            return _SeededCuda.apply(x, p)
        raise NotImplementedError(
            f"variant 'seeded' needs the Triton kernels for {x.device.type} {x.dtype} tensors (CUDA with "
            "`pip install triton`); use variant='packed_exact' here"
        )
    return _PackedExact.apply(x, p)


def _fusable_dtypes(x: torch.dtype, residual: torch.dtype) -> bool:
    """The dtype pairs the fused kernel takes: equal, or a half-type ``x`` with a float32 residual."""
    return x == residual or (residual == torch.float32 and x in (torch.float16, torch.bfloat16))


def dropout_add(
    x: torch.Tensor, residual: torch.Tensor, p: float = 0.5, training: bool = True, variant: str = "packed"
) -> torch.Tensor:
    """``dropout(x, p, training, variant) + residual``, in one pass where the variant allows.

    With the C++ extension, ``packed`` and ``seeded`` read ``x`` and ``residual`` once and write the
    sum once (torch's two kernels read and write the dropout output in between: 5 passes instead
    of 3, and the 1-byte mask instead of bits). The result is bit-identical to the unfused
    ``dropout(x) + residual`` of the same variant and seed (the dropout output is rounded to the
    dtype before the add, as torch does), gradients included. Elsewhere (CPU, Triton fallback,
    ``torch.compile``, which fuses the add itself, ``standard``, ``packed_exact``, broadcasting
    residuals, other dtype pairs) it is exactly the unfused expression.

    Shape:
        ``x`` and ``residual``: the same shape, or shapes that broadcast (then unfused).
    Dtypes:
        The same, or a float16/bfloat16 ``x`` with a float32 ``residual`` (the sum is float32, as torch
        promotes it): BERT under autocast, where the residual comes from a LayerNorm autocast runs in float32.
    """
    if (training and (variant == "packed" or variant == "seeded") and x.is_cuda and type(p) is float
            and 0.0 < p < 1.0 and x.shape == residual.shape and _fusable_dtypes(x.dtype, residual.dtype)):
        kernels = _native_kernels(x)
        if kernels is not None:
            return kernels.packed_add(x, residual, p) if variant == "packed" else kernels.seeded_add(x, residual, p)
    return dropout(x, p, training, variant) + residual
