"""PM-Drop's eager CUDA path in C++ (``csrc/``), built with ``torch.utils.cpp_extension`` on first use.

    python -m pmexp.dropout.native      # build now (about a minute, once per machine) and say which backend runs

Why: a dropout call through a Python ``autograd.Function`` and Triton's launcher cost ~4x torch's own
on the host (H200: 64 vs 15 us forward, 500 vs 176 us forward+backward), and an H200 runs BERT's
kernels faster than Python issues them. Here the autograd node, the seed draw and the launch are C++,
and the kernels draw the same random stream as the Triton ones (same seed, same mask), so the two
backends are interchangeable. Where no CUDA compiler is found or the build fails, packed and seeded
fall back to the Triton kernels with one warning; ``PMEXP_NATIVE=0`` asks for that fallback.
:func:`backend` says which one runs (recorded with every job). :func:`build` builds any of pmexp's
extensions the same way (also :mod:`pmexp.tempo.native`).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["load", "backend", "why_not", "build", "register_random_draw"]

log = logging.getLogger(__name__)
_SOURCES = ("pmdrop.cpp", "kernels.cu")
_FAILURES: dict[str, str] = {}  # extension name -> why it is not loaded


def _build_dir(name: str, arch: str) -> Path:
    root = Path(os.environ.get("PMEXP_NATIVE_DIR", Path.home() / ".cache" / "pmexp" / "native"))
    path = root / f"torch{torch.__version__}-sm{arch.replace('.', '')}" / name  # one build.ninja per extension
    path.mkdir(parents=True, exist_ok=True)
    return path


def _compile(name: str, csrc: Path, sources: Sequence[str]) -> ModuleType:
    from torch.utils.cpp_extension import load as load_extension

    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}.{minor}"
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", arch)  # this device only: a build for every arch takes minutes
    log.info("building %s for sm_%s (once per machine, about a minute)", name, arch)
    return load_extension(
        name=name,
        sources=[str(csrc / s) for s in sources],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3"],  # no fast math: it flushes denormals, torch does not
        build_directory=str(_build_dir(name, arch)),
        verbose=os.environ.get("PMEXP_NATIVE_VERBOSE") == "1",
    )


def build(name: str, csrc: Path, sources: Sequence[str], fallback: str) -> ModuleType | None:
    """Build (or load the cached build of) the C++/CUDA extension ``name`` from ``csrc``'s ``sources``.

    None where it is disabled (``PMEXP_NATIVE=0``), there is no CUDA, or the build failed: then one
    warning says why and what runs instead (``fallback``), and ``why_not(name)`` keeps the reason."""
    if os.environ.get("PMEXP_NATIVE", "1") == "0":
        _FAILURES[name] = "disabled by PMEXP_NATIVE=0"
        return None
    if not torch.cuda.is_available():
        _FAILURES[name] = "no CUDA device"
        return None
    try:
        return _compile(name, csrc, sources)
    except Exception as error:  # no nvcc, no ninja, a compiler error: Triton still runs
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        _FAILURES[name] = reason
        warnings.warn(f"pmexp: the C++/CUDA extension {name} did not build ({reason}); {fallback}. "
                      "PMEXP_NATIVE_VERBOSE=1 shows the build; PMEXP_NATIVE=0 silences this.", RuntimeWarning,
                      stacklevel=3)
        return None


@functools.cache
def load() -> ModuleType | None:
    """The dropout extension (see :func:`build`), or None (then packed and seeded run their Triton kernels)."""
    module = build("pmexp_native", Path(__file__).with_name("csrc"), _SOURCES,
                   "packed and seeded use the Triton kernels (slower on the host)")
    if module is not None:
        _make_traceable()
    return module


def _make_traceable() -> None:
    """What torch.compile needs to call ``pmexp_native::philox_bits`` (compiled packed's draw, defined in C++):
    its output's shape without running it, and a place among AOTAutograd's random ops."""
    torch.library.register_fake("pmexp_native::philox_bits")(_philox_bits_fake)
    register_random_draw(torch.ops.pmexp_native.philox_bits)
    if torch.ops.pmexp_native.philox_bits.default not in BIT_DRAWS:
        BIT_DRAWS.append(torch.ops.pmexp_native.philox_bits.default)


#: Ops drawing keep bits as ``pmexp_native::philox_bits`` does (an empty (n, 0) count and p in; ceil(n / 8) bytes
#: of bits, then the bytes 0..7, out), whose calls in one compiled graph :mod:`pmexp.dropout.merged_draws` merges.
BIT_DRAWS: list[torch._ops.OpOverload] = []


def register_random_draw(op: torch._ops.OpOverloadPacket) -> None:
    """Keep AOTAutograd's graph CSE from merging two calls of ``op`` with equal inputs into one draw (it spares
    only its own list of random ops, not the ``nondeterministic_seeded`` tag), as two dropouts of one tensor
    would be (e.g. SimCSE's two passes over one batch). ``pmexp_native::philox_bits``'s input, a fresh ``empty``
    per call, is never merged either; this keeps the draws apart whatever the op's inputs."""
    from torch._functorch import compile_utils

    if op not in compile_utils.rand_ops:
        compile_utils.rand_ops.append(op)


def _philox_bits_fake(count: torch.Tensor, p: float) -> torch.Tensor:
    return count.new_empty(((count.shape[0] + 7) // 8 + 8,), dtype=torch.uint8)  # the bits, then the 8 shifts


def why_not(name: str = "pmexp_native") -> str | None:
    """Why extension ``name``'s load returned None (None when it did not, or was not called)."""
    return _FAILURES.get(name)


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
