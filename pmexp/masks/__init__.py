"""Bit-level mask storage: pack/unpack, the saved-tensor hook mode, and memory accounting.

Imports torch alone; Triton kernels are loaded only when a CUDA tensor needs them.
"""

from pmexp.masks.accounting import SavedTensorAccounting, saved_tensor_bytes
from pmexp.masks.bits import pack_bits, packed_numel, unpack_bits
from pmexp.masks.hooks import PackedMask, packed_saved_masks

__all__ = [
    "pack_bits",
    "unpack_bits",
    "packed_numel",
    "PackedMask",
    "packed_saved_masks",
    "SavedTensorAccounting",
    "saved_tensor_bytes",
]
