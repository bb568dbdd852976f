"""Bytes saved for backward, by category: what a forward pass keeps alive until backward.

A saved tensor is counted once per storage (views and re-saves of one tensor share it), with
the whole storage's size. Categories:

- ``mask``: bool tensors and uint8 tensors (dropout masks, torch's or packed);
- ``rng``: int64 tensors of at most two elements (the ``seeded`` variant's seed);
- ``parameter``: storages of the parameters passed in (weights saved by matmuls);
- ``activation``: everything else (CPU dropout's float noise lands here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from pmexp.masks.hooks import PackedMask, pack_saved, unpack_saved

__all__ = ["SavedTensorAccounting", "saved_tensor_bytes", "CATEGORIES"]

CATEGORIES = ("mask", "rng", "parameter", "activation")


def _category(t: torch.Tensor, parameter_ptrs: set[int]) -> str:
    if t.untyped_storage().data_ptr() in parameter_ptrs:
        return "parameter"
    if t.dtype in (torch.bool, torch.uint8):
        return "mask"
    if t.dtype == torch.int64 and t.numel() <= 2:
        return "rng"
    return "activation"


class SavedTensorAccounting:
    """Context manager that records every tensor saved for backward inside it.

    Args:
        params: parameters whose storages count as ``parameter`` rather than activations.
        pack_masks: also pack bool tensors as :func:`pmexp.masks.packed_saved_masks` does
            (the counts are then what that mode keeps).

    Example:
        >>> with SavedTensorAccounting(model.parameters()) as acct:
        ...     loss = model(**batch).loss
        >>> loss.backward(); acct.stats()["saved_mask_bytes"]
    """

    def __init__(self, params: Iterable[torch.Tensor] = (), pack_masks: bool = False) -> None:
        self._parameter_ptrs = {p.untyped_storage().data_ptr() for p in params}
        self._pack_masks = pack_masks
        self._storages: dict[int, tuple[int, str, torch.dtype]] = {}
        self._count = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _record(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        self._count += 1
        if key and key not in self._storages:
            self._storages[key] = (storage.nbytes(), _category(t, self._parameter_ptrs), t.dtype)

    def _pack(self, t: torch.Tensor) -> Any:
        saved = pack_saved(t) if self._pack_masks else t.detach()  # detached: see pack_saved
        self._record(saved.bits if isinstance(saved, PackedMask) else saved)
        return saved

    @staticmethod
    def _unpack(saved: Any) -> torch.Tensor:
        return unpack_saved(saved)

    def __enter__(self) -> SavedTensorAccounting:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    def stats(self) -> dict[str, Any]:
        """Flat dict: ``saved_<category>_bytes``, ``saved_total_bytes``, ``saved_tensor_count``,
        ``saved_bytes_by_dtype`` (dtype name -> bytes)."""
        out: dict[str, Any] = {f"saved_{c}_bytes": 0 for c in CATEGORIES}
        by_dtype: dict[str, int] = {}
        for nbytes, category, dtype in self._storages.values():
            out[f"saved_{category}_bytes"] += nbytes
            name = str(dtype).removeprefix("torch.")
            by_dtype[name] = by_dtype.get(name, 0) + nbytes
        out["saved_total_bytes"] = sum(out[f"saved_{c}_bytes"] for c in CATEGORIES)
        out["saved_tensor_count"] = self._count
        out["saved_bytes_by_dtype"] = by_dtype
        return out


def saved_tensor_bytes(
    fn: Callable[[], Any], params: Iterable[torch.Tensor] = (), pack_masks: bool = False
) -> dict[str, Any]:
    """Run ``fn()`` (a forward pass) and return the bytes it saved for backward by category.

    The graph is freed before returning. See :class:`SavedTensorAccounting` for the keys.
    """
    with SavedTensorAccounting(params, pack_masks) as acct:
        out = fn()
    del out
    return acct.stats()
