"""Universal exact mode: every bool tensor saved for backward is kept as bits.

:func:`packed_saved_masks` wraps ``torch.autograd.graph.saved_tensors_hooks``: while it is
active, any op that saves a bool tensor for backward (CUDA ``native_dropout``'s mask, the mask
of ``masked_fill``/``where``, SDPA's math-path dropout mask, ...) has it stored 8 elements per
byte and unpacked when backward needs it. No model surgery; results are bit-identical.

Where it cannot help:

- CPU dropout saves a float noise tensor, not a bool mask (use a ``pmexp.dropout`` variant).
- Fused SDPA attention kernels keep no mask at all (they replay Philox in backward).
- A bool tensor that is also referenced elsewhere (a model output, an input kept alive by the
  caller) stays in memory; packing then adds its bits on top.
- Expanded or broadcast masks whose storage is already smaller than their bits are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from pmexp.masks.bits import pack_bits, packed_numel, unpack_bits

__all__ = ["PackedMask", "packed_saved_masks", "pack_saved", "unpack_saved"]


@dataclass(frozen=True)
class PackedMask:
    """A bool tensor saved for backward as bits (what the pack hook returns)."""

    bits: torch.Tensor
    shape: torch.Size

    @property
    def nbytes(self) -> int:
        return self.bits.numel()


def pack_saved(t: torch.Tensor) -> torch.Tensor | PackedMask:
    """Pack hook: bool tensors become :class:`PackedMask` when that takes less memory.

    Anything else is returned detached: returning ``t`` itself would let an op's saved output
    hold its own ``grad_fn`` through C++ (a cycle Python's GC cannot see), leaking the graph.
    """
    if t.dtype != torch.bool or packed_numel(t.numel()) >= t.untyped_storage().nbytes():
        return t.detach()
    return PackedMask(pack_bits(t), t.shape)


def unpack_saved(saved: torch.Tensor | PackedMask) -> torch.Tensor:
    """Unpack hook: the inverse of :func:`pack_saved`."""
    if isinstance(saved, PackedMask):
        return unpack_bits(saved.bits, saved.shape)
    return saved


@contextlib.contextmanager
def packed_saved_masks() -> Iterator[None]:
    """Store every bool tensor saved for backward as bits while the context is active.

    The forward must run inside the context; backward may run after it.

    Example:
        >>> with packed_saved_masks():
        ...     loss = model(**batch).loss
        >>> loss.backward()
    """
    with torch.autograd.graph.saved_tensors_hooks(pack_saved, unpack_saved):
        yield
