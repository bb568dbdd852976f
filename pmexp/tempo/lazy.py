"""Tempo's Triton kernel modules, imported on first use: CPU-only users never import triton.

    python -c "from pmexp.tempo.lazy import triton_module; print(triton_module('kernels'))"
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["triton_module"]

# A plain dict, not functools.cache: Dynamo reads a global dict under torch.compile(fullgraph=True),
# but traces through a cache wrapper into importlib (a graph break; the GPU test caught it).
_LOADED: dict[str, ModuleType | None] = {}


def triton_module(name: str) -> ModuleType | None:
    """``pmexp.tempo.<name>`` (a module of Triton kernels), or None where triton cannot be imported.

    Import it once outside any compiled region (gelu.py and layernorm.py do at import on CUDA
    machines); inside one, only the dict lookup is traced.
    """
    if name not in _LOADED:
        try:
            _LOADED[name] = importlib.import_module(f"pmexp.tempo.{name}")
        except ImportError:  # pragma: no cover - depends on the machine
            _LOADED[name] = None
    return _LOADED[name]
