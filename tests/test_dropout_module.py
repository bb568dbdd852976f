"""PackedDropout's contract, gradcheck, checkpointing, torch.compile, bytes saved."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from pmexp.dropout import VARIANTS, PackedDropout, dropout
from pmexp.masks import saved_tensor_bytes

PM_VARIANTS = [v for v in VARIANTS if v != "standard"]


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), np.float32(1.5)])
def test_bad_p_raises_naming_p(p):
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got"):
        PackedDropout(p)


@pytest.mark.parametrize("p", ["0.5", None, True, torch.tensor(0.1)])
def test_p_of_another_type_names_its_type(p):
    with pytest.raises(TypeError, match=f"has to be a real number .* but got a .*{type(p).__name__}"):
        PackedDropout(p)


@pytest.mark.parametrize("p", [np.float32(0.25), np.float64(0.25), np.int64(0)])
def test_numpy_p_is_accepted(p):
    assert PackedDropout(p).p == float(p)


def test_bad_variant_lists_choices():
    with pytest.raises(ValueError, match="packed_exact"):
        PackedDropout(0.1, "bits")


def test_module_surface():
    m = PackedDropout(0.25, "seeded")
    assert isinstance(m, nn.Dropout) and m.p == 0.25
    assert repr(m) == "PackedDropout(p=0.25, variant='seeded')"


@pytest.mark.parametrize("variant", VARIANTS)
def test_identity_in_eval_and_at_p0(variant):
    x = torch.randn(5, 7)
    assert PackedDropout(0.5, variant).eval()(x) is x
    assert PackedDropout(0.0, variant)(x) is x


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradcheck_float64(variant):
    x = torch.randn(6, 11, dtype=torch.float64, requires_grad=True)

    def fn(inp):
        torch.manual_seed(3)  # the same mask on every evaluation
        return dropout(inp, 0.4, True, variant)

    assert torch.autograd.gradcheck(fn, (x,))


class Block(nn.Module):
    def __init__(self, variant):
        super().__init__()
        self.lin = nn.Linear(16, 16)
        self.drop = PackedDropout(0.3, variant)

    def forward(self, x):
        return self.drop(torch.tanh(self.lin(x)))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reentrant", [True, False])
def test_activation_checkpointing_same_gradients(variant, reentrant):
    torch.manual_seed(0)
    block = Block(variant)
    x = torch.randn(8, 16, requires_grad=True)

    def grads(use_checkpoint):
        block.zero_grad()
        xx = x.detach().clone().requires_grad_(True)
        torch.manual_seed(11)
        out = checkpoint(block, xx, use_reentrant=reentrant) if use_checkpoint else block(xx)
        out.pow(2).sum().backward()
        return [xx.grad] + [p.grad.clone() for p in block.parameters()]

    for a, b in zip(grads(False), grads(True), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("variant", ["packed_exact", "packed"])
def test_compile_fullgraph_matches_eager(variant):
    torch._dynamo.reset()
    fn = lambda x: dropout(x, 0.3, True, variant).sin()  # noqa: E731
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    x = torch.randn(300, requires_grad=True)
    torch.manual_seed(1)
    y_eager = fn(x)
    (g_eager,) = torch.autograd.grad(y_eager.sum(), x)
    torch.manual_seed(1)
    y_comp = compiled(x)
    (g_comp,) = torch.autograd.grad(y_comp.sum(), x)
    assert torch.equal(y_eager, y_comp) and torch.equal(g_eager, g_comp)


@pytest.mark.parametrize("variant,mask_bytes", [("packed_exact", "bits"), ("packed", "bits"), ("seeded", 0)])
@pytest.mark.parametrize("numel", [1, 9, 4096, 1000003])
def test_bytes_saved_for_backward(variant, mask_bytes, numel):
    x = torch.randn(numel, requires_grad=True)
    stats = saved_tensor_bytes(lambda: dropout(x, 0.5, True, variant))
    expected = math.ceil(numel / 8) if mask_bytes == "bits" else 0
    assert stats["saved_mask_bytes"] == expected
    assert stats["saved_total_bytes"] == expected  # nothing else is kept


def test_standard_cpu_keeps_a_float_noise_tensor():
    x = torch.randn(1000, requires_grad=True)
    stats = saved_tensor_bytes(lambda: dropout(x, 0.5, True, "standard"))
    assert stats["saved_activation_bytes"] == 4000 and stats["saved_mask_bytes"] == 0
