"""PM-Drop: dropout that keeps its mask in 1 bit per element, or not at all.

- :func:`dropout`: functional entry point for every variant (``VARIANTS``); :func:`dropout_add`
  fuses ``dropout(x) + residual``.
- :class:`PackedDropout`: drop-in replacement for ``nn.Dropout``.
- :func:`apply`: model surgery (``nn.Dropout`` modules and transformers attention dropout).

Imports torch alone; transformers is imported inside :func:`apply`, triton on first CUDA use.
"""

from pmexp.dropout.functional import VARIANTS, check_p, check_variant, dropout, dropout_add
from pmexp.dropout.module import PackedDropout
from pmexp.dropout.surgery import TARGETS, PMDropSurgeryWarning, SurgeryReport, apply

__all__ = [
    "VARIANTS",
    "TARGETS",
    "dropout",
    "dropout_add",
    "check_p",
    "check_variant",
    "PackedDropout",
    "apply",
    "SurgeryReport",
    "PMDropSurgeryWarning",
]
