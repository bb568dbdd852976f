"""AdamW's parameter groups, shared by the trained model and the lockstep reference.

    python -m pmexp.train trainer.weight_decay=0.01   # decay on the matrices, none on biases and LayerNorm
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["weight_decay_groups"]


def weight_decay_groups(params: Iterable[torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """Two AdamW groups: ``weight_decay`` on matrices (dim >= 2), none on biases and norm weights."""
    params = list(params)
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
