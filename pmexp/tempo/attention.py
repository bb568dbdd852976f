"""softmax -> dropout -> matmul(probs, V) as one autograd function that never saves the dropout output.

Stock eager attention saves, per head, the softmax output (softmax backward), the dropout mask
(or CPU noise), and the dropout output (the matmul's left operand), each of shape
``(batch, heads, query, key)``. Here backward gets the softmax output, the mask (bits, bool, or
only how to draw it again) and ``V``, and recomputes the dropout output from the first two.

The mask is drawn exactly as :func:`pmexp.dropout.dropout` draws it for the same variant, from
the same generator at the same point of the forward pass, so a model gives the same outputs with
and without Tempo under one seed:

- ``standard``: torch's mask (CPU noise / ``native_dropout``), kept as bool (Tempo's original);
- ``packed_exact``: the same mask, kept as bits;
- ``packed``: CUDA: the fused Triton kernel's mask, as bits; elsewhere ``packed_exact``;
- ``seeded``: no mask; CPU: a snapshot of the default generator; CUDA: the kernel's seed.

Where PM-Drop's own fused attention keeps the same tensors (CUDA, ``packed`` or ``seeded`` under
autocast, calls of :data:`pmexp.dropout.masked_matmul.MIN_PROBABILITIES` or more: softmax's output,
the mask as bits or a seed, ``V``; no dropout output), :func:`tempo_attention` hands the call to it
(:func:`pmexp.dropout.surgery.attention_function`): the same mask and outputs at PM-Drop's host cost
(H200, BERT-large S512: 662 against this function's 1,244 us a call forward and backward, Tempo's
attention being a third of Tempo's host cost; runs/2026-11-30-tempo-gelu-table).

Dropout is linear and elementwise, ``dropped = probs * noise``, so one "apply the mask" routine
serves for recomputing the output in backward and for the gradient. Edge cases follow
:func:`pmexp.dropout.dropout`: without dropout (eval, ``p == 0``, empty) or at ``p == 1`` the plain
composite runs (without dropout the matmul and softmax share one saved tensor anyway).
"""

from __future__ import annotations

import torch

from pmexp.dropout import attention_matmul
from pmexp.dropout.functional import (
    _bits_backward,
    _cpu_noise,
    _cpu_noise_replay,
    _cpu_noise_value,
    _draw_seed,
    _fused_forward,
    _replay_cpu_noise,
    _uses_kernel,
    check_p,
    check_variant,
    dropout,
)
from pmexp.dropout.surgery import attention_function
from pmexp.masks import pack_bits, unpack_bits

__all__ = ["softmax_dropout_matmul", "tempo_attention"]


def _draw(probs: torch.Tensor, p: float, variant: str, ctx) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dropout of ``probs``; sets ``ctx.kind`` (and ``ctx.replay``/``ctx.seed``) and returns
    ``(dropped, tensor to save or None)``."""
    fused = _uses_kernel(probs)
    if variant == "seeded":
        if probs.device.type == "cpu":
            rng_state = torch.get_rng_state()
            noise = _cpu_noise(probs, p)
            ctx.kind, ctx.replay = "rng", _cpu_noise_replay(rng_state, noise)
            return probs * noise, None
        if not fused:
            raise NotImplementedError(f"variant 'seeded' has no implementation for {probs.device.type} tensors")
        seed = _draw_seed(probs)
        dropped, _ = _fused_forward(probs, seed, p, False)
        ctx.kind = "seed"
        if isinstance(seed, torch.Tensor):
            return dropped.view(probs.shape), seed
        ctx.seed = seed
        return dropped.view(probs.shape), None
    if variant == "packed" and fused:
        dropped, bits = _fused_forward(probs, _draw_seed(probs), p, True)
        ctx.kind = "fused_bits"
        return dropped.view(probs.shape), bits
    if probs.device.type == "cpu":
        noise = _cpu_noise(probs, p)
        dropped, mask = probs * noise, noise.ne(0)
    else:
        dropped, mask = torch.ops.aten.native_dropout(probs, p, True)
    ctx.kind = "bool" if variant == "standard" else "bits"
    return dropped, mask if variant == "standard" else pack_bits(mask)


def _apply_mask(t: torch.Tensor, ctx, saved: torch.Tensor | None, out_dtype: torch.dtype | None = None,
                ) -> torch.Tensor:
    """``t * noise`` for the noise drawn in forward (the dropout output, or its gradient), computed
    in the wider of ``t``'s dtype and ``out_dtype`` and rounded once to ``out_dtype`` (default ``t``'s).

    The bits kernel reads ``t`` and writes ``out_dtype`` directly: under autocast the recomputed
    output goes to the matmul in bfloat16 and the matmul's bfloat16 gradient comes back to float32
    without a float32 tensor of the attention's size written and read again in between (two casts,
    ~0.15 ms a BERT-large layer each on an H200). Same numbers as casting around the float32 product.
    """
    out_dtype = out_dtype or t.dtype
    if ctx.kind == "fused_bits":
        return _bits_backward(t, saved, ctx.p, out_dtype).view(t.shape)
    return _masked(t.to(torch.promote_types(t.dtype, out_dtype)), ctx, saved).to(out_dtype)


def _masked(t: torch.Tensor, ctx, saved: torch.Tensor | None) -> torch.Tensor:
    """``t * noise`` in ``t``'s dtype, for every kind but the bits kernel's."""
    p = ctx.p
    if ctx.kind == "rng":  # the forward's noise, in its own layout (the gradient's may differ)
        return t * _replay_cpu_noise(ctx.replay, p)
    if ctx.kind == "seed":
        seed = saved if saved is not None else ctx.seed
        return _fused_forward(t, seed, p, False)[0].view(t.shape)
    mask = saved if ctx.kind == "bool" else unpack_bits(saved, t.shape)
    if t.device.type == "cpu":
        return t * mask.to(t.dtype).mul_(_cpu_noise_value(p, t.dtype))
    return torch.ops.aten.native_dropout_backward(t, mask, 1.0 / (1.0 - p))


class _SoftmaxDropoutMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores: torch.Tensor, value: torch.Tensor, p: float, variant: str):
        probs = torch.softmax(scores, dim=-1)
        ctx.p = p
        dropped, saved = _draw(probs, p, variant, ctx)
        out = torch.matmul(dropped, value)
        ctx.out_dtype = out.dtype  # under autocast the matmul ran in it, whatever probs' dtype (fp32)
        ctx.has_saved = saved is not None
        ctx.save_for_backward(probs, value, *([saved] if saved is not None else []))
        ctx.mark_non_differentiable(dropped)
        return out, dropped

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor, _grad_dropped):
        probs, value, *rest = ctx.saved_tensors
        saved = rest[0] if ctx.has_saved else None
        mm = ctx.out_dtype  # the matmul's backward in the dtype its forward ran in, as autocast's would
        # the dropout output recomputed, bit for bit (same noise, same product), in the matmul's dtype
        dropped = _apply_mask(probs, ctx, saved, out_dtype=mm)
        grad_out = grad_out.to(mm)
        grad_value = torch.matmul(dropped.transpose(-1, -2), grad_out).sum_to_size(value.shape)
        grad_dropped = torch.matmul(grad_out, value.to(mm).transpose(-1, -2))
        grad_probs = _apply_mask(grad_dropped, ctx, saved, out_dtype=probs.dtype)
        grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        return grad_scores, grad_value.to(value.dtype), None, None


def softmax_dropout_matmul(
    scores: torch.Tensor, value: torch.Tensor, p: float = 0.0, training: bool = True, variant: str = "packed"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``matmul(dropout(softmax(scores, -1), p), value)`` that saves no dropout output.

    Args:
        scores: attention scores, ``(*, query, key)``, mask already added.
        value: ``(*, key, head_dim)``.
        p: attention dropout probability. Default: 0.0.
        training: apply dropout if True. Default: True.
        variant: one of :data:`pmexp.dropout.VARIANTS`. Default: ``"packed"``.

    Returns:
        ``(output, dropped probabilities)``; the second is for ``output_attentions`` and is not
        differentiable through this path.

    Raises:
        ValueError: for ``p`` outside [0, 1] or an unknown variant.
    """
    p = check_p(p)
    check_variant(variant)
    if not training or p == 0.0 or p == 1.0 or scores.numel() == 0 or not scores.is_floating_point():
        probs = dropout(torch.softmax(scores, dim=-1), p, training, variant)
        return torch.matmul(probs, value), probs
    return _SoftmaxDropoutMatmul.apply(scores, value, p, variant)


def tempo_attention(variant: str):
    """An attention function for transformers' ``AttentionInterface``: BERT's eager attention
    (``transformers.models.bert.modeling_bert.eager_attention_forward``) with the fused
    softmax-dropout-matmul in the middle, or PM-Drop's fused attention where that keeps as little
    (:func:`pmexp.dropout.attention_matmul.takes_kernel_path`)."""
    check_variant(variant)
    fused = attention_function(variant)

    def attention(module, query, key, value, attention_mask, scaling=None, dropout: float = 0.0, **kwargs):
        if module.training and attention_matmul.takes_kernel_path(variant, query, key, dropout):
            return fused(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
        if scaling is None:
            scaling = query.size(-1) ** -0.5
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        if attention_mask is not None:
            scores = scores + attention_mask
        out, weights = softmax_dropout_matmul(scores, value, dropout, module.training, variant)
        return out.transpose(1, 2).contiguous(), weights

    attention.__name__ = f"pmexp_tempo_{variant}_attention"
    return attention
