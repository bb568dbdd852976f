"""Dropout variants written in plain torch ops, for graphs traced by ``torch.compile``.

Why: a custom op is opaque to Inductor's partitioner, which then has to save the op's output
for the next matmul's backward (2 bytes per element in bf16) next to the packed bits, and cannot
fuse the op with the softmax before it. Written in torch ops, the same variants let the
partitioner choose what to keep:

- ``packed``/``packed_exact``: the keep mask is drawn as torch draws it (CPU noise /
  ``native_dropout``, which Inductor lowers to its own Philox randoms), packed to bits, and the
  output is computed from the *unpacked* bits, so everything downstream depends on the bits
  alone: the cheapest cut the partitioner can save is the bits (1/8 byte per element).
  In a whole model that needs care: a node shared by every dropout (one 0-d scale constant, one
  arange of bit shifts, merged by CSE) triggers the partitioner's "used far apart" heuristic
  (``torch._functorch.config.ban_recompute_used_far_apart``), which then refuses to recompute
  the mask and saves float32 scaled masks or unpacked byte masks instead of the bits. Hence the
  per-element ``div`` by a Python scalar here and per-call shifts in
  :func:`pmexp.masks.bits.unpack_bits_torch`. With it a compiled BERT keeps the bits and otherwise
  exactly what compiled ``standard`` keeps (CPU: tests/test_compile.py; H200: runs/2026-11-29-compile-rerun,
  e.g. BERT-large bf16 seq 512: 16,613 MB + 241 MB of bits against 16,613 + 1,928 MB of bool masks).
  On CUDA ``packed`` draws its bits alone: with the C++ extension one op a call
  (``pmexp_native::philox_bits``, from torch's CUDA generator, the bit shifts in its output:
  :func:`_native_keep`; compiled MiniLM 0.94-0.95x standard against 0.90x, runs/2026-11-30-compiled-native;
  with :func:`inductor_options` those calls merge into one a graph, :mod:`pmexp.dropout.merged_draws`: 0.98-1.00x,
  runs/2026-11-30-compiled-host),
  else one Triton kernel from a seed drawn by ``randint`` (``pmexp::philox_bits``: the eager kernel's
  Philox stream, 4 keep decisions per Philox call). Before: packing a mask of ``x``'s
  shape made Inductor write float32 randoms to memory and read them back; then rows of 8 drawn
  with ``rand`` (:func:`draw_bits`, still the path without Triton) spent a Philox call per element.
- ``seeded``: the mask is a counter-based hash of (seed, element index) inside a
  ``torch.utils.checkpoint`` region, which tells the partitioner to recompute it in backward
  from the 8-byte seed (random ops are never recomputed; the hash is plain integer arithmetic).
  The index is built so that no per-element tensor is shared between two dropouts (see
  :func:`_index_plus`; before that an int64 index per attention dropout was saved). In backward
  Inductor used to store parts of the hash (an int64 partial index; with eager attention a float32
  tensor of the probabilities' size) while recomputing the mask: at seq 2048, 0.4-1.7 GB of peak
  (runs/2026-11-29-compile-rerun). Cause and fix: :data:`SEEDED_INDUCTOR_OPTIONS` (a shorter hash and
  the realize threshold that fits it; graphs with seeded compile with :func:`inductor_options`).
  The hash stream differs from the eager Triton kernel's Philox stream: a compiled and an eager
  run of ``seeded`` draw different (equally distributed) masks under one seed.

Select the custom ops instead with ``PMEXP_COMPILED_DROPOUT=custom_op`` (for comparison; see
``pmexp.bench``). Under ``aot_eager`` on CPU, ``packed`` and ``packed_exact`` draw exactly the
eager CPU noise, so compiled and eager outputs and gradients are bit-identical.
"""

from __future__ import annotations

import math
import os

import torch
from torch.utils.checkpoint import checkpoint

from pmexp.masks.bits import pack_bits_torch, unpack_bits_torch

__all__ = ["use_traced", "inductor_options", "draw_bits", "packed_traced", "seeded_traced", "hash_keep"]

_M32 = 0xFFFFFFFF
# Inductor stores (realizes) a pointwise value that two places read once it has more than
# ``realize_opcount_threshold`` ops (30 on CUDA; torch 2.13 gives the CPU 50, so CPU runs hid this). In
# seeded's backward, ``grad * keep(hash) * scale * probs`` is read by softmax backward's reduction and
# again after it: 36 ops with the old hash, so on CUDA at seq 2048 it was written out as a float32 tensor
# of the attention's size (TinyBERT B16: 3.2 GB a layer, runs/2026-11-30-seeded-hash's kernel 19,
# ``out_ptr0``), which ate most of what seeded saves. The hash is 39 ops now (a 2-D index, the seed
# unhashed), recomputed in the second loop with this threshold; tests/test_compile.py checks the
# lowering with CUDA's threshold on the CPU. H200 (runs/2026-11-30-seeded-inline): seq 2048 peaks 99.6-99.7%
# of standard's mask bytes lower, steps 1.01-1.08x standard's; the cost is compile time (BERT-large S2048's
# first step 118-126 s against standard's 75: bigger kernels). The keyed hash (an odd multiplier from the
# seed, :func:`hash_keep`) costs 4 more: the CPU lowering test passes from 46 where the 39-op hash passed
# from 42 (measured on the H200 at 48); 52 keeps that margin. H200 at 52 (runs/2026-11-30-compiled-next): the
# same seq-2048 peaks as the unkeyed hash at 48 (TinyBERT B16 19,839 MB, BERT-large B4 48,067).
SEEDED_INDUCTOR_OPTIONS = {"realize_opcount_threshold": 52}


# Kernel names without the fused ops' names (a kind and a number). Why: Triton stores a kernel's binary under its
# name cut to 150 characters, and Inductor's static launcher looks for the whole name, so a kernel named after
# more fused ops launches through Triton's Python launcher instead (8 more Python calls a launch). Seeded's hash
# fused into layer norms names 14 of compiled MiniLM's kernels 153-170 characters long, packed's 1 (standard's
# longest: 148); seeded 0.976x standard there, 0.993-1.004x with short names (runs/2026-11-30-compiled-host,
# calls 6-9). The cost: profiles show numbered kernels, not their ops.
SHORT_KERNEL_NAMES = {"triton.descriptive_names": False}


def inductor_options(variant: str | None) -> dict:
    """Inductor options a compiled model with ``variant``'s dropout needs (``torch.compile(options=...)``):
    seeded's realize threshold; the pass merging packed's C++ bit draws, and seeded's seed draws, into one a graph
    (:mod:`pmexp.dropout.merged_draws`; without it, a draw per dropout: correct, slower on a host-bound step);
    kernel names short enough for Inductor's static launcher (:data:`SHORT_KERNEL_NAMES`)."""
    if not use_traced() or variant not in ("packed", "seeded"):
        return {}
    from pmexp.dropout.merged_draws import MERGE_BIT_DRAWS  # imports Inductor: only when compiling

    seeded = SEEDED_INDUCTOR_OPTIONS if variant == "seeded" else {}
    return {**seeded, **SHORT_KERNEL_NAMES, "joint_custom_pre_pass": MERGE_BIT_DRAWS}


def use_traced() -> bool:
    """Whether a traced graph should use these torch-op variants (default) or the custom ops."""
    choice = os.environ.get("PMEXP_COMPILED_DROPOUT", "traced")
    if choice not in ("traced", "custom_op"):
        raise ValueError(f"PMEXP_COMPILED_DROPOUT={choice!r}: use 'traced' (default) or 'custom_op'")
    return choice == "traced"


def _keep_as_torch_draws(x: torch.Tensor, p: float) -> torch.Tensor:
    if x.device.type == "cpu":  # torch's CPU dropout: bernoulli noise, the same draw as eager
        return torch.empty_like(x).bernoulli_(1 - p).ne(0)
    return torch.ops.aten.native_dropout(x, p, True)[1]


def draw_bits(numel: int, p: float, device: torch.device) -> torch.Tensor:
    """``ceil(numel / 8)`` bytes of keep bits (each kept with probability ``1 - p``), drawn in rows of 8.

    Why rows: packing reads 8 elements per output byte. Packing torch's mask of ``x``'s shape
    (``pack_bits_torch``) makes Inductor write the float32 randoms to memory and read them back
    (4 + 4 bytes per element, more traffic than the dropout itself); drawn as a ``(rows, 8)`` tensor
    and packed by a sum over the last dimension, the randoms stay in registers of one reduction kernel.
    """
    rows = -(-numel // 8)
    keep = torch.rand(rows, 8, device=device) >= p
    shifts = torch.arange(8, device=device, dtype=torch.uint8)
    return (keep.to(torch.uint8) << shifts).sum(-1, dtype=torch.uint8)


def _fresh_bits(x: torch.Tensor, p: float) -> torch.Tensor:
    """Keep bits for ``x`` from a fresh seed: on CUDA the eager kernel's Philox stream (one Triton
    kernel, ``pmexp::philox_bits``, 4 keep decisions per Philox call); elsewhere :func:`draw_bits`.
    Why not :func:`draw_bits` on CUDA: Inductor's ``rand`` spends a Philox call per element, and
    that separate kernel took 590 us a layer in compiled TinyBERT S512, where standard draws inside
    its softmax kernel: most of packed's 4.7% there (runs/2026-11-30-compiled-packed)."""
    if x.device.type == "cuda" and _HAS_PHILOX_BITS:
        seed = torch.randint(0, 2**62, (1,), device=x.device, dtype=torch.int64)
        return torch.ops.pmexp.philox_bits(seed, x.numel(), p)
    return draw_bits(x.numel(), p, x.device)


def _native_keep(x: torch.Tensor, p: float) -> torch.Tensor:
    """Keep mask of ``x`` from the C++ op ``pmexp_native::philox_bits``: the bits, then the 8 bytes 0..7 that
    unpacking shifts by. The shifts come out of the op so that no graph builds them: built per call they cost
    a kernel and a saved buffer each, shared they stop the partitioner recomputing the mask (the module
    docstring); slices of the op's output are neither, so the op's output is all a call keeps for backward."""
    drawn = _native_bits(x, p)
    return unpack_bits_torch(drawn[:-8], x.numel(), shifts=drawn[-8:]).view(x.shape)


def _native_draws(x: torch.Tensor) -> bool:
    """Whether compiled packed draws ``x``'s bits with the C++ op (CUDA, the extension built)."""
    return x.device.type == "cuda" and _native_bits_available()


def _native_bits(x: torch.Tensor, p: float) -> torch.Tensor:
    # The count as an empty (n, 0) tensor, not x: an op's inputs are buffers to Inductor, and taking x cost
    # compiled MiniLM 8 more Inductor kernels a step (runs/2026-11-30-compiled-native).
    return torch.ops.pmexp_native.philox_bits(torch.empty((x.numel(), 0), dtype=torch.uint8, device=x.device), p)


def _native_bits_available() -> bool:
    from pmexp.dropout import native

    return native.load() is not None


# Decided once per trace, outside it (a build is not traceable): what torch.compiler.assume_constant_result
# sets, set by hand because that decorator imports Dynamo, and with it Triton, when pmexp.dropout is imported.
_native_bits_available._dynamo_marked_constant = True  # type: ignore[attr-defined]


def _import_philox_bits() -> bool:
    """Import the Triton kernels (registering ``pmexp::philox_bits``); False without Triton."""
    try:
        from pmexp.dropout import kernels  # noqa: F401
    except ImportError:
        return False
    return True


# A module constant, not a cached function: Dynamo traces through a cache wrapper (and so into the
# import) on every compiled trace; a global bool is a guarded constant. Imported here, at import time
# on CUDA machines, so no compiled graph's trace runs the import itself.
_HAS_PHILOX_BITS = torch.cuda.is_available() and _import_philox_bits()


def packed_traced(x: torch.Tensor, p: float, exact: bool = True) -> torch.Tensor:
    """Dropout whose only saved state can be the packed bits (see the module docstring). ``exact``:
    the mask torch's own dropout would draw (``packed_exact``; CPU); else fresh bits (:func:`_fresh_bits`)."""
    if exact:
        keep = unpack_bits_torch(pack_bits_torch(_keep_as_torch_draws(x.detach(), p)), x.numel()).view(x.shape)
    elif _native_draws(x):
        keep = _native_keep(x, p)
    else:
        keep = unpack_bits_torch(_fresh_bits(x, p), x.numel()).view(x.shape)
    # keep / (1 - p) per element is torch's CPU noise bit for bit. Not a 0-d scale tensor: one such
    # constant would be shared (CSE) by every dropout in the graph, and the partitioner's "used far
    # apart" heuristic then refuses to recompute the scaled masks and saves them in float32.
    return x * keep.to(x.dtype).div(1 - p)


def _hash32(v: torch.Tensor) -> torch.Tensor:
    """``lowbias32`` (Wellons): a 32-bit integer hash with full avalanche, on int64 holding uint32."""
    v = v ^ (v >> 16)
    v = (v * 0x7FEB352D) & _M32
    v = v ^ (v >> 15)
    v = (v * 0x846CA68B) & _M32
    return v ^ (v >> 16)


def _index_plus(key: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``key + (row-major index of each element of shape)``, int64, built from one small arange per
    dimension. Why not ``arange(numel)``: two dropouts of one shape would share that node (CSE),
    and a node shared by two checkpoint regions is saved (8 bytes per element); here the per-element
    values depend on ``key`` (this call's seed) from the first addition on, so nothing big is shared.
    """
    v = key.reshape([1] * len(shape))
    stride = 1
    for dim in reversed(range(len(shape))):
        size = shape[dim]
        view = [1] * len(shape)
        view[dim] = size
        index = torch.arange(size, device=key.device, dtype=torch.int64)
        v = v + (index if stride == 1 else index * stride).view(view)  # no "* 1": Inductor counts it
        stride *= size
    return v


def hash_keep(seed: torch.Tensor, shape: torch.Size, p: float) -> torch.Tensor:
    """Keep mask of ``shape`` from a 1-element int64 ``seed``: ``hash(index, seed) >= p * 2**32``.

    The index runs over ``(rows, last dim)``: one index op per dimension is what Inductor counts
    against its realize threshold (see :data:`SEEDED_INDUCTOR_OPTIONS`), and the rows' arange is
    small (shared between dropouts of one shape, it costs 8 bytes a row if saved).

    Why the odd multiplier: with the key only added to the index, two calls whose 32-bit keys lay
    within ``numel`` of each other drew shifted copies of one mask (``mask_b[j] == mask_a[j + d]``, ``d``
    the keys' difference): a pair's chance ``2 * numel / 2**32``, 9% for TinyBERT S512 B64's attention
    (201M elements), so some of a step's layers shared their mask. Multiplied by an odd number drawn
    from the seed's high bits, the hash inputs of two calls coincide only along a scattered affine map
    of the index, as any two 32-bit hashes' outputs coincide; shifted copies need equal multipliers too
    (chance 2**-28 a pair). 4 ops (see :data:`SEEDED_INDUCTOR_OPTIONS`); tests/test_compile.py."""
    key = seed & _M32  # the seed is uniformly random already: hashing it added ops, not randomness
    odd = (seed >> 34) | 1  # a random odd multiplier < 2**28 (the product below stays < 2**63)
    cols = shape[-1] if len(shape) else 1
    rows = math.prod(shape) // max(cols, 1)
    v = _index_plus(key, (rows, cols))  # key + index < 2**34 (numel < 2**33)
    # The high word folded into the low one (distinct indices, distinct words), times the odd key: mod
    # 2**32 the product sees only the low word, so the masks need not be taken before it.
    r = _hash32(((v ^ ((v >> 32) * 0x9E3779B9)) * odd) & _M32)
    return (r >= min(round(p * 2**32), _M32)).view(shape)


def seeded_traced(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout that keeps an 8-byte seed and recomputes the mask in backward (see the module docstring)."""
    seed = torch.randint(0, 2**62, (1,), device=x.device, dtype=torch.int64)
    keep = checkpoint(hash_keep, seed, x.shape, p, use_reentrant=False)
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - p)))
