"""``PackedDropout``: an ``nn.Dropout`` whose mask costs 1 bit per element (or nothing)."""

from __future__ import annotations

import torch
from torch import nn

from pmexp.dropout.functional import check_p, check_variant, dropout

__all__ = ["PackedDropout"]


class PackedDropout(nn.Dropout):
    """Dropout that keeps its mask as bits (``packed``, ``packed_exact``) or as a seed (``seeded``).

    In training, zeroes each element with probability ``p`` and scales the rest by
    ``1 / (1 - p)``, exactly as ``nn.Dropout``; in eval mode (and at ``p == 0``) it is the
    identity. It subclasses ``nn.Dropout`` so code that reads ``.p`` or checks the type keeps
    working. ``inplace`` is kept for compatibility, but the output is always a new tensor.

    Args:
        p: probability of an element being zeroed. Default: 0.5.
        variant: one of :data:`pmexp.dropout.VARIANTS`. Default: ``"packed"``.
        inplace: accepted for ``nn.Dropout`` compatibility; ignored. Default: False.

    Shape:
        Input and output: any shape, same dtype.

    Example:
        >>> m = PackedDropout(p=0.1, variant="packed")
        >>> y = m(torch.randn(4, 128, 768, requires_grad=True))
        >>> y.sum().backward()
    """

    def __init__(self, p: float = 0.5, variant: str = "packed", inplace: bool = False) -> None:
        super().__init__(check_p(p), inplace)
        self.variant = check_variant(variant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.variant)

    def extra_repr(self) -> str:
        return f"p={self.p}, variant={self.variant!r}"
