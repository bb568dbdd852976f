"""Gradients in every memory layout: inputs and incoming gradients each contiguous, transposed,
channels-last, sliced or expanded, for every variant, against the variant's own mask and, for the
exact variants, against ``nn.Dropout`` bit for bit.

`seeded` on CPU once redrew its noise in the gradient's layout (``empty_like(grad)``) while the
forward drew it in the input's: the output was right and 55-60% of the gradient wrong (issue 13).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pmexp.dropout import VARIANTS, PackedDropout

LAYOUTS = ["contiguous", "transposed", "channels_last", "sliced", "expanded"]
SHAPE = (2, 3, 4, 5)  # 4-D so channels-last applies; 120 elements
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, NEEDS_CUDA])]


def in_layout(layout: str, shape: tuple[int, ...], seed: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """A tensor of logical ``shape`` whose memory is laid out as ``layout`` names.

    Values are in [0.5, 1.5) (never zero, so ``y != 0`` is the kept mask)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*s):
        return (torch.rand(s, generator=g) + 0.5).to(dtype=dtype, device=device)

    if layout == "contiguous":
        return rand(*shape)
    if layout == "transposed":  # every stride reversed: column-major
        return rand(*shape[::-1]).permute(*reversed(range(len(shape))))
    if layout == "channels_last":
        return rand(*shape).contiguous(memory_format=torch.channels_last)
    if layout == "sliced":  # every other element of a last dim twice as long: not dense
        return rand(*shape[:-1], 2 * shape[-1])[..., ::2]
    if layout == "expanded":  # stride 0 along dim 1: overlapping memory
        return rand(shape[0], 1, *shape[2:]).expand(shape)
    raise ValueError(layout)


def run(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, seed: int = 1234):
    """Output and input gradient under a fixed seed, ``x`` and ``grad`` in their own layouts."""
    x = x.detach().requires_grad_(True)  # keeps x's strides (a leaf may be expanded)
    torch.manual_seed(seed)
    if x.is_cuda:
        torch.cuda.manual_seed(seed)
    y = module(x)
    (dx,) = torch.autograd.grad(y, x, grad)
    return y.detach(), dx


def exact_variants(device: str) -> list[str]:
    """Variants bit-identical to ``nn.Dropout`` on ``device`` (README: the PM-Drop library table)."""
    return ["packed_exact", "packed", "seeded"] if device == "cpu" else ["packed_exact"]


def check_layouts(variant: str, in_lay: str, grad_lay: str, device: str, p: float, dtype, shape) -> None:
    x = in_layout(in_lay, shape, 0, dtype, device)
    grad = in_layout(grad_lay, shape, 1, dtype, device)
    assert x.shape == grad.shape == shape
    y, dx = run(PackedDropout(p, variant), x, grad)
    keep = y != 0  # x has no zeros
    # The variant's own mask: dx = grad * (keep / (1 - p)). At p = 0.5 the scale is 2, exact in every
    # dtype, so any correct implementation (CPU noise, native_dropout_backward, the Triton kernels)
    # gives these bits.
    if p == 0.5:
        assert torch.equal(dx, torch.where(keep, grad * 2, torch.zeros_like(grad)))
    else:
        assert torch.equal(dx == 0, ~keep)
    if variant in exact_variants(device):
        y_ref, dx_ref = run(nn.Dropout(p), x, grad)
        assert torch.equal(y, y_ref)
        assert torch.equal(dx, dx_ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad_layout", LAYOUTS)
@pytest.mark.parametrize("input_layout", LAYOUTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_gradient_in_every_layout(variant, input_layout, grad_layout, device):
    check_layouts(variant, input_layout, grad_layout, device, 0.5, torch.float32, SHAPE)


def test_the_layouts_differ_in_draw_order():
    """CPU ``bernoulli_`` fills in memory order, so a noise drawn in the gradient's layout puts the
    same draws on other elements: the layout cases above can fail (they did, before the fix)."""
    x = in_layout("channels_last", SHAPE, 0)
    grad = in_layout("contiguous", SHAPE, 1)
    torch.manual_seed(0)
    a = torch.empty_like(x).bernoulli_(0.5)
    torch.manual_seed(0)
    b = torch.empty_like(grad).bernoulli_(0.5)
    assert not torch.equal(a, b)


@settings(max_examples=60, deadline=None)
@given(
    variant=st.sampled_from(VARIANTS),
    input_layout=st.sampled_from(LAYOUTS),
    grad_layout=st.sampled_from(LAYOUTS),
    p=st.sampled_from([0.1, 0.3, 0.5, 0.9]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]),
    shape=st.tuples(*[st.integers(1, 5)] * 4),
)
def test_layouts_property(variant, input_layout, grad_layout, p, dtype, shape):
    check_layouts(variant, input_layout, grad_layout, "cpu", p, dtype, shape)


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_conv_seeded_linear(device):
    """The issue's reproduction: a channels-last Conv2d -> seeded dropout -> Linear; every
    parameter's gradient against nn.Dropout's (bit for bit on CPU, where seeded is exact;
    on CUDA seeded draws its own mask, so against its own mask through the same conv)."""

    def grads(drop: nn.Module):
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 8, 3, padding=1).to(device, memory_format=torch.channels_last)
        lin = nn.Linear(8 * 6 * 6, 4).to(device)
        x = torch.randn(2, 3, 6, 6, device=device).contiguous(memory_format=torch.channels_last)
        torch.manual_seed(5)
        h = drop(conv(x))
        assert h.is_contiguous(memory_format=torch.channels_last) or device == "cuda"
        lin(h.flatten(1)).pow(2).sum().backward()
        return h.detach(), [conv.weight.grad, conv.bias.grad, lin.weight.grad, lin.bias.grad]

    h, got = grads(PackedDropout(0.5, "seeded"))
    if device == "cpu":
        h_ref, want = grads(nn.Dropout(0.5))
        assert torch.equal(h, h_ref)
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
    else:
        keep = (h != 0).float()  # replay the same mask as a fixed multiplier
        _, want = grads(lambda t: t * keep * 2)
        for a, b in zip(got, want, strict=True):
            # fp32 conv/linear sums of <= 8*6*6 = 288 products, each term equal: cuDNN may
            # reorder them, so allow 288 * eps(fp32) relative to the largest gradient.
            assert torch.allclose(a, b, rtol=0, atol=288 * torch.finfo(torch.float32).eps * b.abs().max().item())


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_compiled_gradient_in_other_layouts(variant):
    """Under torch.compile (aot_eager: the traced variants of pmexp.dropout.traced, no code
    generation) a channels-last input with a transposed gradient, and the reverse."""
    torch._dynamo.reset()
    fn = torch.compile(lambda t: PackedDropout(0.5, variant)(t), backend="aot_eager", fullgraph=True)
    for in_lay, grad_lay in [("channels_last", "transposed"), ("transposed", "channels_last")]:
        x = in_layout(in_lay, SHAPE, 0)
        grad = in_layout(grad_lay, SHAPE, 1)
        y, dx = run(fn, x, grad)
        assert torch.equal(dx, torch.where(y != 0, grad * 2, torch.zeros_like(grad)))
