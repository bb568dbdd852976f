"""PM-Drop's eager CUDA path in C++ (``csrc/``), built with ``torch.utils.cpp_extension`` on first use.

    python -m pmexp.dropout.native      # build now (about a minute, once per machine) and say which backend runs

Why: a dropout call through a Python ``autograd.Function`` and Triton's launcher cost ~4x torch's own
on the host (H200: 64 vs 15 us forward, 500 vs 176 us forward+backward), and an H200 runs BERT's
kernels faster than Python issues them. Here the autograd node, the seed draw and the launch are C++,
and the kernels draw the same random stream as the Triton ones (same seed, same mask), so the two
backends are interchangeable. Where no CUDA compiler is found or the build fails, packed and seeded
fall back to the Triton kernels with one warning; ``PMEXP_NATIVE=0`` asks for that fallback.
:func:`backend` says which one runs (recorded with every job).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["load", "backend", "why_not"]

log = logging.getLogger(__name__)
_SOURCES = ("pmdrop.cpp", "kernels.cu")
_failure: list[str] = []


def _build_dir(arch: str) -> Path:
    root = Path(os.environ.get("PMEXP_NATIVE_DIR", Path.home() / ".cache" / "pmexp" / "native"))
    path = root / f"torch{torch.__version__}-sm{arch.replace('.', '')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build() -> ModuleType:
    from torch.utils.cpp_extension import load as load_extension

    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}.{minor}"
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", arch)  # this device only: a build for every arch takes minutes
    csrc = Path(__file__).with_name("csrc")
    log.info("building pmexp's CUDA extension for sm_%s (once per machine, about a minute)", arch)
    return load_extension(
        name="pmexp_native",
        sources=[str(csrc / s) for s in _SOURCES],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3"],  # no fast math: it flushes denormals, torch does not
        build_directory=str(_build_dir(arch)),
        verbose=os.environ.get("PMEXP_NATIVE_VERBOSE") == "1",
    )


@functools.cache
def load() -> ModuleType | None:
    """The built extension, or None where it is disabled (``PMEXP_NATIVE=0``), there is no CUDA, or the
    build failed (then one warning says why and :func:`why_not` keeps the reason)."""
    if os.environ.get("PMEXP_NATIVE", "1") == "0":
        _failure.append("disabled by PMEXP_NATIVE=0")
        return None
    if not torch.cuda.is_available():
        _failure.append("no CUDA device")
        return None
    try:
        return _build()
    except Exception as error:  # no nvcc, no ninja, a compiler error: Triton still runs
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        _failure.append(reason)
        warnings.warn(f"pmexp: the C++/CUDA dropout extension did not build ({reason}); packed and seeded "
                      "use the Triton kernels (slower on the host). PMEXP_NATIVE_VERBOSE=1 shows the build; "
                      "PMEXP_NATIVE=0 silences this.", RuntimeWarning, stacklevel=2)
        return None


def why_not() -> str | None:
    """Why :func:`load` returned None (None when it did not, or was not called)."""
    return _failure[-1] if _failure else None


def backend() -> str:
    """Which eager CUDA backend packed and seeded use: ``native`` (C++), ``triton``, ``torch`` (no CUDA
    kernels at all: packed_exact's path), or ``cpu`` (no CUDA device: the CPU paths)."""
    if not torch.cuda.is_available():
        return "cpu"
    if load() is not None:
        return "native"
    try:
        from pmexp.dropout import kernels  # noqa: F401

        return "triton"
    except ImportError:
        return "torch"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(f"backend: {backend()}" + (f" ({why_not()})" if why_not() else ""))
