"""pack_bits / unpack_bits: layout, round trip on any shape, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pmexp.masks import pack_bits, packed_numel, unpack_bits


def reference_pack(mask: torch.Tensor) -> list[int]:
    out = [0] * packed_numel(mask.numel())
    for i, v in enumerate(mask.reshape(-1).tolist()):
        out[i // 8] |= int(v) << (i % 8)
    return out


def test_every_byte_value():
    patterns = torch.tensor([[(k >> i) & 1 for i in range(8)] for k in range(256)], dtype=torch.bool)
    assert pack_bits(patterns).tolist() == list(range(256))


@pytest.mark.parametrize("numel", [0, 1, 7, 8, 9, 63, 64, 65, 1001])
def test_layout_matches_reference(numel):
    mask = torch.rand(numel) < 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.dim() == 1
    assert packed.tolist() == reference_pack(mask)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=4), p=st.floats(0, 1), transpose=st.booleans())
def test_round_trip(shape, p, transpose):
    mask = torch.rand(shape) < p
    if transpose and mask.dim() >= 2:
        mask = mask.transpose(0, -1)  # non-contiguous view
    packed = pack_bits(mask)
    assert packed.numel() == packed_numel(mask.numel())
    assert packed.tolist() == reference_pack(mask)
    out = unpack_bits(packed, mask.shape)
    assert out.dtype == torch.bool and out.shape == mask.shape
    assert torch.equal(out, mask)


def test_strided_view_round_trip():
    mask = (torch.rand(10, 12) < 0.3)[::2, 1::3]
    assert torch.equal(unpack_bits(pack_bits(mask), mask.shape), mask)


def test_errors_say_what_to_do():
    with pytest.raises(TypeError, match="bool"):
        pack_bits(torch.ones(3))
    with pytest.raises(TypeError, match="uint8"):
        unpack_bits(torch.ones(3), (3,))
    with pytest.raises(ValueError, match="needs 2 bytes"):
        unpack_bits(torch.zeros(1, dtype=torch.uint8), (9,))


@pytest.mark.parametrize("shape", [(-1,), (2, -1), (-1, 4)])
def test_unpack_bits_refuses_an_inferred_size(shape):
    """10 elements are 2 bytes = 16 bits: a -1 would turn 6 padding bits into mask elements."""
    bits = pack_bits(torch.ones(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="full shape.*padding bits"):
        unpack_bits(bits, shape)


@pytest.mark.parametrize("mask", [[True, False], (True,), None])
def test_pack_bits_of_a_non_tensor_is_a_type_error(mask):
    with pytest.raises(TypeError, match="bool torch.Tensor, got a"):
        pack_bits(mask)


def test_unpack_bits_of_a_non_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="uint8 tensor"):
        unpack_bits(b"\x01", (3,))
