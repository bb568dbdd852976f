"""Tempo's Triton kernel modules, imported on first use: CPU-only users never import triton.

    python -c "from pmexp.tempo.lazy import triton_module; print(triton_module('kernels'))"
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

__all__ = ["triton_module"]


@functools.cache
def triton_module(name: str) -> ModuleType | None:
    """``pmexp.tempo.<name>`` (a module of Triton kernels), or None where triton cannot be imported."""
    try:
        return importlib.import_module(f"pmexp.tempo.{name}")
    except ImportError:  # pragma: no cover - depends on the machine
        return None
