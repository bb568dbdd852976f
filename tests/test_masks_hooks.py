"""packed_saved_masks (the universal exact mode) and the saved-tensor accounting."""

import gc
import math
import weakref

import pytest
import torch
from torch import nn

from pmexp.masks import SavedTensorAccounting, packed_saved_masks, saved_tensor_bytes


def native_dropout_model(x):
    # CPU's native_dropout saves a bool mask, as CUDA's F.dropout does
    y, _ = torch.ops.aten.native_dropout(x, 0.4, True)
    return (y.masked_fill(y > 1.0, 0.0) * 3).sum()  # masked_fill saves another bool mask


def test_hook_mode_is_bit_identical_and_packs_every_bool():
    x = torch.randn(4097, requires_grad=True)
    torch.manual_seed(3)
    native_dropout_model(x).backward()
    ref = x.grad.clone()
    x.grad = None
    torch.manual_seed(3)
    with packed_saved_masks():
        loss = native_dropout_model(x)
    loss.backward()  # backward may run after the context
    assert torch.equal(x.grad, ref)

    torch.manual_seed(3)
    plain = saved_tensor_bytes(lambda: native_dropout_model(x))
    torch.manual_seed(3)
    packed = saved_tensor_bytes(lambda: native_dropout_model(x), pack_masks=True)
    assert plain["saved_mask_bytes"] == 2 * 4097
    assert packed["saved_mask_bytes"] == 2 * math.ceil(4097 / 8)


def test_expanded_masks_are_left_alone():
    x = torch.randn(64, 64, requires_grad=True)
    mask = (torch.rand(64, 1) < 0.5).expand(64, 64)  # 64 bytes of storage, 4096 elements
    stats = saved_tensor_bytes(lambda: x.masked_fill(mask, 0.0), pack_masks=True)
    assert stats["saved_mask_bytes"] == 64


def test_accounting_categories_and_shared_storage():
    lin = nn.Linear(32, 32)
    x = torch.randn(8, 32, requires_grad=True)
    with SavedTensorAccounting(lin.parameters()) as acct:
        h = torch.tanh(lin(x))
        out = (h * h).sum()  # h saved twice: one storage
    out.backward()
    stats = acct.stats()
    assert stats["saved_parameter_bytes"] == 32 * 32 * 4
    assert stats["saved_activation_bytes"] == 2 * 8 * 32 * 4  # x and h (tanh output, reused by mul)
    assert stats["saved_total_bytes"] == sum(
        stats[f"saved_{c}_bytes"] for c in ("mask", "rng", "parameter", "activation")
    )
    assert stats["saved_bytes_by_dtype"] == {"float32": stats["saved_total_bytes"]}
    assert stats["saved_tensor_count"] >= 4


@pytest.mark.parametrize("context", ["accounting", "packed"])
def test_hooks_do_not_keep_the_graph_alive(context):
    """A pack hook returning an op's own output would make a C++ cycle that leaks the graph
    (seen on the GPU as a whole probe's activations kept for the rest of a sweep)."""
    lin = nn.Linear(8, 8)
    x = torch.randn(4, 8)
    ctx = SavedTensorAccounting(lin.parameters()) if context == "accounting" else packed_saved_masks()
    with ctx:
        hidden = torch.tanh(lin(x))  # tanh saves its output
        loss = hidden.sum()
    ref = weakref.ref(hidden)
    del hidden, loss
    gc.collect()
    assert ref() is None
