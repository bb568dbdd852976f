"""packed_exact (and seeded on CPU) against nn.Dropout itself: bit-identical outputs and grads."""

import pytest
import torch
from torch import nn

from pmexp.dropout import PackedDropout

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
PS = [0.0, 0.1, 0.5, 0.9, 1.0]
SHAPES = [(), (0,), (0, 3), (7,), (3, 5, 9), (64, 33)]


def make_input(shape, dtype, noncontiguous=False):
    g = torch.Generator().manual_seed(hash((shape, str(dtype))) % 2**31)
    if noncontiguous:
        return torch.randn(shape[::-1], generator=g).to(dtype).transpose(0, -1)
    return torch.randn(shape, generator=g).to(dtype)


def forward_backward(module, x, seed=1234):
    x = x.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = module(x)
    grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(7)).to(y.dtype)
    if y.requires_grad:
        y.backward(grad)
    return y.detach(), x.grad


@pytest.mark.parametrize("variant", ["packed_exact", "seeded", "packed"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bit_identical_to_nn_dropout_on_cpu(variant, dtype, p, shape):
    x = make_input(shape, dtype)
    y_ref, g_ref = forward_backward(nn.Dropout(p), x)
    y, g = forward_backward(PackedDropout(p, variant), x)
    assert y.dtype == dtype and y.shape == x.shape
    assert torch.equal(y, y_ref)
    assert (g is None) == (g_ref is None)
    if g is not None:
        assert torch.equal(g, g_ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_input(dtype):
    x = make_input((6, 10, 4), dtype, noncontiguous=True)
    assert not x.is_contiguous()
    y_ref, g_ref = forward_backward(nn.Dropout(0.3), x)
    y, g = forward_backward(PackedDropout(0.3, "packed_exact"), x)
    assert torch.equal(y, y_ref) and torch.equal(g, g_ref)


def test_p_one_gives_zeros_not_nan():
    y, g = forward_backward(PackedDropout(1.0, "packed"), torch.randn(100))
    assert torch.equal(y, torch.zeros(100)) and torch.equal(g, torch.zeros(100))


def test_same_instance_twice_keeps_two_masks():
    m = PackedDropout(0.5, "packed_exact")
    x = torch.randn(1000, requires_grad=True)
    torch.manual_seed(0)
    y = m(x) + 2 * m(x)
    y.sum().backward()
    ref = nn.Dropout(0.5)
    x2 = x.detach().clone().requires_grad_(True)
    torch.manual_seed(0)
    (ref(x2) + 2 * ref(x2)).sum().backward()
    assert torch.equal(x.grad, x2.grad)
    assert set(x.grad.unique().tolist()) <= {0.0, 2.0, 4.0, 6.0}
    assert 6.0 in x.grad.tolist() and 2.0 in x.grad.tolist()  # the two masks differ
