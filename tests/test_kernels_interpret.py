"""The Triton kernels on CPU tensors through Triton's interpreter (TRITON_INTERPRET=1).

The CUDA code paths (`packed`, `seeded`) are the same kernels; here they run without a GPU.
"""

import math
import os

import pytest
import torch

if torch.cuda.is_available():  # the interpreter would also take over the real kernels in this process
    pytest.skip("interpreter tests run on CPU-only machines; tests/test_gpu.py covers CUDA", allow_module_level=True)
os.environ["TRITON_INTERPRET"] = "1"  # must be set before the kernels are defined
triton = pytest.importorskip("triton")

from pmexp.dropout import functional as F_  # noqa: E402
from pmexp.dropout import kernels  # noqa: E402
from pmexp.masks import bits as bits_mod  # noqa: E402
from pmexp.masks import triton_bits  # noqa: E402


@pytest.mark.parametrize("numel", [0, 1, 7, 8, 9, 8191])
def test_triton_pack_matches_torch(numel):
    mask = torch.rand(numel) < 0.4
    packed = triton_bits.pack_bits(mask)
    assert torch.equal(packed, bits_mod.pack_bits_torch(mask))
    assert torch.equal(triton_bits.unpack_bits(packed, numel), mask)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fused_forward_rate_bits_and_backward(p, dtype):
    n = 3 * kernels.TILE + 77  # a ragged last tile
    x = torch.randn(n).to(dtype)
    x[x == 0] = 1.0
    seed = torch.tensor([20261128])
    y, bits = torch.ops.pmexp.fused_dropout(x, seed, p, True)
    keep = bits_mod.unpack_bits_torch(bits, n)
    assert bits.numel() == math.ceil(n / 8)
    assert y.dtype == dtype
    # drop rate within 5 sigma of p
    rate = 1 - keep.double().mean().item()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)
    # mask bits agree with the zeros of the output, kept values are scaled
    assert torch.equal(keep, y != 0)
    expected = (x.float()[keep] * torch.tensor(1 / (1 - p))).to(dtype)  # fp32 scale, as torch
    # exact in fp32; the interpreter's numpy casts to 16-bit types may round differently (1 ulp)
    ulp = {torch.float32: 0.0, torch.bfloat16: 2**-7, torch.float16: 2**-10}[dtype]
    torch.testing.assert_close(y[keep], expected, rtol=ulp, atol=0)
    # backward from bits agrees with forward, and with the seeded replay
    grad = torch.randn(n).to(dtype)
    dx = torch.ops.pmexp.bits_dropout_backward(grad, bits, p)
    assert torch.equal(dx != 0, keep & (grad != 0))
    replay, empty = torch.ops.pmexp.fused_dropout(grad, seed, p, False)
    assert empty.numel() == 0 and torch.equal(dx, replay)


def test_seed_changes_mask_and_padding_bits_are_zero():
    n = 1003
    x = torch.ones(n)
    _, a = torch.ops.pmexp.fused_dropout(x, torch.tensor([1]), 0.5, True)
    _, b = torch.ops.pmexp.fused_dropout(x, torch.tensor([2]), 0.5, True)
    assert not torch.equal(a, b)
    assert (a[-1].item() >> (n % 8)) == 0


@pytest.mark.parametrize("fn", [F_._FusedPacked, F_._SeededCuda])
def test_autograd_functions_gradcheck(fn):
    x = torch.randn(2 * kernels.TILE + 5, dtype=torch.float64, requires_grad=True)

    def run(inp):
        torch.manual_seed(0)
        return fn.apply(inp, 0.3)

    assert torch.autograd.gradcheck(run, (x,), fast_mode=True)


def test_int_seed_and_tensor_seed_draw_the_same_mask():
    """Eager launches take an int seed, traced ones a device tensor: one stream either way."""
    x = torch.randn(kernels.TILE + 9)
    y_int, bits_int = kernels.forward(x, 977, 0.25, True)
    y_ten, bits_ten = torch.ops.pmexp.fused_dropout(x, torch.tensor([977]), 0.25, True)
    assert torch.equal(bits_int, bits_ten) and torch.equal(y_int, y_ten)


@pytest.mark.parametrize(("dtype", "out_dtype"), [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16),
                                                  (torch.float16, torch.float32), (torch.float32, torch.float32)])
def test_bits_backward_rounds_once_to_the_output_dtype(dtype, out_dtype):
    """Tempo's attention backward: the recomputed output straight to the matmul's dtype, the matmul's
    gradient straight back to float32; the same numbers as casting around the float32 product."""
    n = 5 * kernels.TILE + 3
    grad = torch.randn(n).to(dtype)
    bits = bits_mod.pack_bits_torch(torch.rand(n) < 0.8)
    got = kernels.backward(grad, bits, 0.1, out_dtype=out_dtype)
    want = kernels.backward(grad.float(), bits, 0.1).to(out_dtype)
    assert got.dtype == out_dtype
    if out_dtype == torch.float32:  # the upcast is exact, the product the same float32 rounding
        assert torch.equal(got, want)
    else:  # one rounding to 16 bits; the interpreter's numpy cast may differ by 1 ulp from torch's
        torch.testing.assert_close(got, want, rtol=2**-7, atol=0)


@pytest.mark.parametrize("variant", ["packed", "seeded"])
def test_masked_matmul_is_the_unfused_dropout_then_matmul(variant):
    """CUDA's fused attention path (pmexp.dropout.masked_matmul) on CPU tensors: the same loss and
    gradients bit for bit in float32 (each value rounded as unfused rounds it), and the matmul keeps
    probs (softmax's tensor) and the mask, not a copy of the dropped probabilities."""
    from pmexp.dropout import masked_matmul as mm
    from pmexp.masks import saved_tensor_bytes

    torch.manual_seed(3)
    scores = torch.randn(2, 3, 40, 40, requires_grad=True)
    value = torch.randn(2, 3, 40, 8, requires_grad=True)
    weight = torch.randn(2, 3, 40, 8)

    def step(fused: bool):
        torch.manual_seed(7)  # the seed each dropout draws
        probs = scores.softmax(-1)
        dropped = mm.masked_dropout(probs, 0.3, variant)
        out = mm.masked_matmul(probs, value, dropped) if fused else torch.matmul(dropped, value)
        loss = (out * weight).sum()
        grads = torch.autograd.grad(loss, (scores, value))
        return loss, grads

    (loss_u, grads_u), (loss_f, grads_f) = step(False), step(True)
    assert torch.equal(loss_u, loss_f) and all(torch.equal(a, b) for a, b in zip(grads_u, grads_f, strict=True))

    def saved(fused: bool) -> int:
        def forward():  # softmax keeps probs either way; unfused, the matmul keeps its own copy of dropped
            probs = scores.softmax(-1)
            dropped = mm.masked_dropout(probs, 0.3, variant)
            return mm.masked_matmul(probs, value, dropped) if fused else torch.matmul(dropped, value)

        return saved_tensor_bytes(forward)["saved_total_bytes"]

    assert saved(False) - saved(True) == 2 * 3 * 40 * 40 * 4  # exactly one float32 tensor of probs' size


@pytest.mark.parametrize("n", [1, 7, 8, 9, kernels.TILE, 3 * kernels.TILE + 77])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_philox_bits_are_the_fused_forwards_bits(n, p):
    """Compiled `packed` on CUDA draws its bits alone (``pmexp::philox_bits``): the very bits the
    fused forward stores for the same seed, padding bits of the last byte included (zero)."""
    seed = torch.tensor([20261130])
    bits = torch.ops.pmexp.philox_bits(seed, n, p)
    assert torch.equal(bits, torch.ops.pmexp.fused_dropout(torch.ones(n), seed, p, True)[1])
    assert not torch.equal(bits, torch.ops.pmexp.philox_bits(seed + 1, n, p)) or n < 64
