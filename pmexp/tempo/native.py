"""Tempo GELU's (16-bit activations) and LayerNorm's eager CUDA paths in C++ (``csrc/``), built on first use.

    python -m pmexp.tempo.native      # build now (about a minute, once per machine) and say which path runs

Why: Tempo GELU through a Python ``autograd.Function`` and two Triton launches costs ~3x stock GELU
on the host (H200, bfloat16: 45 against 10 us forward, 277 against 104 us forward+backward; this node:
24 and 149; runs/2026-11-30-tempo-native), and a BERT-large step is host-bound. Here the node and the
launches are C++; the kernels give the Triton kernels' bits and gradient (the same ``g'`` table, built once by
:func:`pmexp.tempo.kernels.grad_table`). Built like :mod:`pmexp.dropout.native` (``PMEXP_NATIVE=0``
turns both off); where it does not build, Tempo GELU runs its Triton kernels with one warning.
LayerNorm likewise (H200: 295 against 166 us forward+backward through its Python node; this node: 196
against 191, runs/2026-11-30-tempo-ln-native): forward is
torch's plus the device-side zero-weight check, backward a CUDA port of :mod:`pmexp.tempo.ln_kernels`
(the same formulas in float32; its sums in another order, so gradients match it to rounding, not bits).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import ModuleType

from pmexp.dropout import native

__all__ = ["load", "why_not", "NAME"]

NAME = "pmexp_tempo_native"


@functools.cache
def load() -> ModuleType | None:
    """The extension, or None (disabled, no CUDA, or the build failed: :func:`why_not` says which)."""
    return native.build(NAME, Path(__file__).with_name("csrc"), ("tempo.cpp", "kernels.cu", "layernorm.cu"),
                        "Tempo GELU and LayerNorm use their Triton kernels (slower on the host)")


def why_not() -> str | None:
    """Why :func:`load` returned None (None when it did not, or was not called)."""
    return native.why_not(NAME)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print("Tempo GELU and LayerNorm: " + ("native (C++)" if load() is not None else f"Triton kernels ({why_not()})"))
