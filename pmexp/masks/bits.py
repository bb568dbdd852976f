"""Pack a bool mask into 1 bit per element and back.

Layout: element ``8k + i`` of the flattened (row-major) mask is bit ``i`` of byte ``k``
(little-endian bit order). The last byte's unused high bits are zero.
On CUDA the work runs in Triton kernels (:mod:`pmexp.masks.triton_bits`) when triton is
importable; everywhere else a pure torch path is used. Both give identical bytes.
"""

from __future__ import annotations

import functools
import sys

import torch

__all__ = ["pack_bits", "unpack_bits", "packed_numel", "pack_bits_torch", "unpack_bits_torch"]

# 8 bytes (one per mask element, each 0 or 1) read as a little-endian int64 times this
# constant puts bit i of the packed byte at bit 56 + i: the classic "gather LSBs" multiply.
_GATHER = 0x0102040810204080


def packed_numel(numel: int) -> int:
    """Number of bytes that hold ``numel`` mask bits: ``ceil(numel / 8)``."""
    return (numel + 7) // 8


@functools.cache
def _triton_bits():
    """The Triton module, or None where triton is not importable."""
    try:
        from pmexp.masks import triton_bits
    except ImportError:  # pragma: no cover - depends on the machine
        return None
    return triton_bits


def _use_triton(t: torch.Tensor) -> bool:
    return t.is_cuda and not torch.compiler.is_compiling() and _triton_bits() is not None


def _check_endianness() -> None:
    if sys.byteorder != "little":  # pragma: no cover - no big-endian torch build in use
        raise RuntimeError("pmexp.masks packs bits through little-endian int64 views")


def pack_bits_torch(mask: torch.Tensor) -> torch.Tensor:
    """Torch implementation of :func:`pack_bits` (any device)."""
    flat = mask.reshape(-1)
    n = flat.numel()
    pad = (-n) % 8  # whole bytes (int64 words) of 8 elements each
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    if torch.compiler.is_compiling():  # Inductor cannot lower dtype views of bool; it fuses this instead
        # Python-int shifts, not an arange: one arange would be shared by every pack in the graph
        # (CSE), and the partitioner then refuses to recompute across it (pmexp.dropout.traced).
        rows = flat.view(-1, 8).to(torch.int32)
        return sum(rows[:, i] << i for i in range(8)).to(torch.uint8)
    _check_endianness()
    words = flat.contiguous().view(torch.uint8).view(torch.int64)
    packed = ((words * _GATHER) >> 56) & 0xFF
    return packed.to(torch.uint8)


def unpack_bits_torch(packed: torch.Tensor, numel: int, shifts: torch.Tensor | None = None) -> torch.Tensor:
    """Torch implementation of :func:`unpack_bits` on a flat result (any device). ``shifts``: the 8 bit
    shifts (uint8 0..7) where the caller has them already (compiled packed's C++ draw returns them)."""
    compiling = torch.compiler.is_compiling()
    if shifts is None:
        shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
        if compiling:
            # Shifts of this call's own (+ 0 read from `packed`): the arange alone would be one node
            # shared by every unpack in the graph, and the partitioner would not recompute across it
            # (it would save the unpacked mask instead of the bits; pmexp.dropout.traced).
            shifts = shifts + (packed.reshape(-1)[:1] & 0)
    expanded = ((packed.reshape(-1, 1) >> shifts) & 1).reshape(-1)[:numel]
    if compiling:
        return expanded != 0
    return expanded.view(torch.bool)  # 0/1 bytes are valid bools: no copy


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a bool tensor into a 1-D uint8 tensor of ``ceil(mask.numel() / 8)`` bytes.

    Args:
        mask: bool tensor of any shape, contiguous or not, on any device.

    Returns:
        1-D ``torch.uint8`` tensor on ``mask``'s device; bit ``i`` of byte ``k`` holds
        element ``8k + i`` of ``mask.reshape(-1)``.

    Raises:
        TypeError: if ``mask`` is not a bool tensor.

    Example:
        >>> pack_bits(torch.tensor([True, False, True]))
        tensor([5], dtype=torch.uint8)
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"pack_bits expects a bool torch.Tensor, got a {type(mask).__name__}; "
                        "pass torch.tensor(mask, dtype=torch.bool)")
    if mask.dtype != torch.bool:
        raise TypeError(f"pack_bits expects a bool tensor, got {mask.dtype}; pass `t != 0` for a 0/1 tensor")
    if _use_triton(mask):
        return _triton_bits().pack_bits(mask)
    return pack_bits_torch(mask)


def unpack_bits(packed: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: a contiguous bool tensor of ``shape``.

    Args:
        packed: 1-D uint8 tensor from :func:`pack_bits`.
        shape: shape of the original mask, every size given (no -1: the bytes hold up to 7 padding
            bits, so the number of elements cannot be inferred from them).

    Raises:
        TypeError: if ``packed`` is not a uint8 tensor.
        ValueError: if ``shape`` has a negative size, or ``packed`` holds too few bytes for it.
    """
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        got = packed.dtype if isinstance(packed, torch.Tensor) else type(packed).__name__
        raise TypeError(f"unpack_bits expects a uint8 tensor of bytes from pack_bits, got {got}")
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"unpack_bits needs the mask's full shape, got {tuple(shape)}: a -1 cannot be inferred "
                         "(the last byte holds up to 7 padding bits); pass the original mask.shape")
    shape = torch.Size(shape)
    numel = shape.numel()
    if packed.numel() < packed_numel(numel):
        raise ValueError(
            f"unpack_bits needs {packed_numel(numel)} bytes for shape {tuple(shape)}, got {packed.numel()}"
        )
    if _use_triton(packed):
        return _triton_bits().unpack_bits(packed, numel).view(shape)
    return unpack_bits_torch(packed, numel).view(shape)
