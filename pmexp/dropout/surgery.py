"""Model surgery: route a model's dropout through a PM-Drop variant.

Two kinds of dropout live in a transformer:

- ``hidden``: ``nn.Dropout`` modules (embeddings, after attention and FFN, classifier). Each is
  swapped for a :class:`PackedDropout` with the same ``p``.
- ``attention``: in transformers 5 the attention-probability dropout is a call to
  ``nn.functional.dropout`` inside the model's attention function; the attention module's
  ``nn.Dropout`` is only read for ``.p``. We register an attention function (and its mask
  function, without which the padding mask silently arrives as None) under ``pmexp_<variant>``
  with transformers' ``AttentionInterface`` / ``AttentionMaskInterface`` and switch the model to
  it. The function runs the model's own ``eager_attention_forward`` with its ``F.dropout``
  turned into the variant, so the math stays the model's own and ``packed_exact`` stays
  bit-identical: in eager mode a copy of that function whose global ``nn`` (or ``F``) has
  ``functional.dropout`` replaced (no per-op cost); under ``torch.compile``, or where the
  function reaches dropout another way, a narrow ``TorchFunctionMode`` (a Python hook on every
  op of the attention block: measured, it costs host time).

SDPA models are routed too (``pmexp_sdpa_<variant>``): SDPA's fused CUDA kernels keep no mask
(Philox replay), so wherever SDPA picks one the call goes to SDPA unchanged; where it would fall
back to its math path, which keeps a mask per call (any CPU dropout; on CUDA a head size its
kernels do not take together with a padding mask: TinyBERT's 26), the model's eager attention
runs instead with the variant's dropout, on the same mask turned additive. Under torch.compile
transformers keeps the padding mask even when it is all ones, so compiled TinyBERT SDPA takes
that path in every step. Models whose attention calls ``F.dropout`` outside the attention
interface (Longformer) are reported as not covered.
"""

from __future__ import annotations

import dis
import functools
import logging
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode

from pmexp.dropout import attention_matmul, masked_matmul
from pmexp.dropout.attention_matmul import AttentionShims
from pmexp.dropout.functional import check_variant, dropout
from pmexp.dropout.fusion import fuse_residual_dropout, unfuse_residual_dropout
from pmexp.dropout.module import PackedDropout

__all__ = [
    "TARGETS",
    "apply",
    "attention_function",
    "SurgeryReport",
    "PMDropSurgeryWarning",
    "attention_name",
    "register_attention",
    "reject_wrappers",
    "swap_modules",
]

log = logging.getLogger(__name__)
TARGETS = ("hidden", "attention")
_PREFIX = "pmexp_"


class PMDropSurgeryWarning(UserWarning):
    """Surgery matched nothing: the model's dropout is unchanged."""


@dataclass
class SurgeryReport:
    """What :func:`apply` changed."""

    variant: str
    targets: tuple[str, ...]
    modules: list[str] = field(default_factory=list)
    attention_implementation: str | None = None
    attention_covered: bool = False
    attention_reason: str = ""
    fused_residual: list[str] = field(default_factory=list)
    # eager attention's dropout -> matmul keeps no dropped copy (on CUDA: packed/seeded under autocast)
    fused_attention_matmul: bool = False
    kernels: str = "torch"  # packed/seeded on CUDA: native (C++) or triton; cpu without CUDA

    @property
    def replaced(self) -> int:
        return len(self.modules)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "targets": list(self.targets), "replaced": self.replaced}

    def __str__(self) -> str:
        covered = "covered" if self.attention_covered else "not covered"
        fused = f" ({len(self.fused_residual)} fused with their residual add)" if self.fused_residual else ""
        matmul = ("; its dropout -> matmul fused (on CUDA where free: under autocast, from "
                  f"{masked_matmul.MIN_PROBABILITIES:,} probabilities a call)") if self.fused_attention_matmul else ""
        return (f"pmexp surgery ({self.variant}): {self.replaced} dropout modules replaced{fused}; "
                f"attention dropout {covered}: {self.attention_reason}{matmul}")


def attention_name(variant: str, base: str = "eager", fuse_matmul: bool = True) -> str:
    """The name under which a variant's attention function for ``base`` (eager or sdpa) is registered
    (``_unfused`` appended where its dropout -> matmul is not fused)."""
    name = _PREFIX + variant if base == "eager" else f"{_PREFIX}{base}_{variant}"
    return name if fuse_matmul else name + "_unfused"


def _base_implementation(current: str | None) -> str | None:
    """The stock attention a model runs, or ran before pmexp's surgery: eager, sdpa, or None (others)."""
    current = str(current)
    if current in ("eager", "sdpa"):
        return current
    if current.startswith(_PREFIX + "sdpa_"):
        return "sdpa"
    return "eager" if current.startswith(_PREFIX) else None


class _RouteDropout(TorchFunctionMode):
    """Turns ``F.dropout`` calls into a variant; every other op passes through."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.variant = variant

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            return _routed(self.variant, *args, **kwargs)
        return func(*args, **kwargs)


def _routed(variant: str, input, p: float = 0.5, training: bool = True, inplace: bool = False):
    return dropout(input, p, training, variant)


class _FunctionalShim:
    """``torch.nn.functional`` with ``dropout`` replaced (every other name passes through)."""

    def __init__(self, dropout: Callable) -> None:
        self.dropout = dropout

    def __getattr__(self, name: str) -> Any:
        return getattr(F, name)


class _NnShim:
    """``torch.nn`` whose ``functional`` is a :class:`_FunctionalShim`."""

    def __init__(self, functional: _FunctionalShim) -> None:
        self.functional = functional

    def __getattr__(self, name: str) -> Any:
        return getattr(nn, name)


class _TorchShim:
    """``torch`` with ``matmul`` replaced (every other name passes through)."""

    def __init__(self, matmul: Callable) -> None:
        self.matmul = matmul

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


def _calls_torch_matmul(function: Callable) -> bool:
    """Whether ``function`` calls ``torch.matmul`` through its global ``torch``."""
    ops = list(dis.get_instructions(function))
    return function.__globals__.get("torch") is torch and any(
        a.opname == "LOAD_GLOBAL" and a.argval == "torch" and b.opname in ("LOAD_ATTR", "LOAD_METHOD")
        and b.argval == "matmul" for a, b in zip(ops, ops[1:], strict=False))


def _dropout_globals(function: Callable) -> list[str] | None:
    """The global names through which ``function`` calls dropout: ``nn`` (``nn.functional.dropout``)
    or ``F`` (``F.dropout``); None when a call reaches it any other way (or none does)."""
    ops = list(dis.get_instructions(function))
    names = []
    for i, op in enumerate(ops):
        if op.opname not in ("LOAD_ATTR", "LOAD_METHOD") or op.argval != "dropout":
            continue
        chain, j = [], i - 1
        while j >= 0 and ops[j].opname in ("LOAD_ATTR", "LOAD_METHOD"):
            chain.append(ops[j].argval)
            j -= 1
        root = function.__globals__.get(ops[j].argval) if j >= 0 and ops[j].opname == "LOAD_GLOBAL" else None
        if not ((root is nn and chain == ["functional"]) or (root is F and not chain)):
            return None
        names.append(ops[j].argval)
    return names or None


@functools.cache
def _rebound_attention(eager: Callable, variant: str, fuse: bool = True) -> Callable | None:
    """A copy of ``eager`` whose dropout is the variant's, or None where it cannot be rebound safely.
    ``fuse``: its dropout's output goes into the next ``torch.matmul`` without a saved copy."""
    names = _dropout_globals(eager)
    if names is None:
        return None
    scope = dict(eager.__globals__)
    # Shims only where a torch.matmul can take the dropout's output (their dropout holds its input until
    # the next matmul call; each call of the copy lets go of it at its end, see below).
    shims = AttentionShims(variant) if fuse and _calls_torch_matmul(eager) else None
    functional = _FunctionalShim(shims.dropout if shims else functools.partial(_routed, variant))
    for name in set(names):
        scope[name] = _NnShim(functional) if scope[name] is nn else functional
    if shims:
        scope["torch"] = _TorchShim(shims.matmul)
    copy = types.FunctionType(eager.__code__, scope, eager.__name__, eager.__defaults__, eager.__closure__)
    copy.__kwdefaults__ = eager.__kwdefaults__
    if shims is None:
        return copy

    @functools.wraps(eager)
    def fused(*args: Any, **kwargs: Any) -> Any:
        try:
            return copy(*args, **kwargs)
        finally:  # a dropout whose output no matmul took must not keep its input past the call
            shims.release()

    return fused


def _eager_attention_of(module: nn.Module) -> Callable | None:
    """The ``eager_attention_forward`` of the file that defines ``module``'s class."""
    return getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)


def attention_function(variant: str, base: str = "eager", fuse_matmul: bool = True) -> Callable:
    """The attention function :func:`apply` registers for ``variant`` (transformers' signature): the
    model's own ``eager_attention_forward`` with the variant's dropout (``base="eager"``; its matmul
    fused where :mod:`pmexp.dropout.attention_matmul` allows), or SDPA falling back to that."""
    def eager_attention(module, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
        eager = _eager_attention_of(module)
        if eager is None:
            raise RuntimeError(
                f"pmexp attention: {type(module).__module__} defines no eager_attention_forward; "
                "use targets=('hidden',) for this model"
            )
        if not dropout:
            return eager(module, query, key, value, attention_mask, dropout=dropout, **kwargs)
        if not torch.compiler.is_compiling():
            fuse = fuse_matmul and attention_matmul.fusing() and attention_matmul.may_fuse(query, key)
            rebound = _rebound_attention(eager, variant, fuse)
            if rebound is not None:
                return rebound(module, query, key, value, attention_mask, dropout=dropout, **kwargs)
        with _RouteDropout(variant):
            return eager(module, query, key, value, attention_mask, dropout=dropout, **kwargs)

    def sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        if dropout and _sdpa_keeps_a_mask(query, key, value, attention_mask, dropout, kwargs.get("scaling")):
            mask = _additive_mask(module, query, key, attention_mask, kwargs.get("is_causal"))
            return eager_attention(module, query, key, value, mask, dropout, **kwargs)
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, **kwargs)

    attention = eager_attention if base == "eager" else sdpa_attention
    attention.__name__ = f"{attention_name(variant, base, fuse_matmul)}_attention"
    return attention


def _sdpa_keeps_a_mask(query, key, value, mask, dropout: float, scale: float | None) -> bool:
    """Whether SDPA would run its math path for this call (which keeps a dropout mask; fused kernels keep none).

    Eager: SDPA's own choice. Under torch.compile that call cannot be traced, so the same rule is read from
    what is known at trace time: flash takes no mask, memory-efficient takes any mask but needs the head
    size to fill 16 bytes (8 half-precision or 4 fp32 elements); off CUDA, dropout always runs in math.
    """
    if not torch.compiler.is_compiling():
        gqa = key.shape[-3] != query.shape[-3]  # fewer key/value heads: SDPA is called with enable_gqa
        choice = torch._fused_sdp_choice(query, key, value, mask, dropout, False, scale=scale, enable_gqa=gqa)
        return choice == SDPBackend.MATH.value
    if query.device.type != "cuda":
        return True
    head = query.shape[-1]
    flash = mask is None and head <= 256 and query.dtype in (torch.float16, torch.bfloat16)
    efficient = head % (16 // query.element_size()) == 0
    return not (flash or efficient)


def _additive_mask(module, query, key, mask, is_causal: bool | None):
    """SDPA's mask (bool: True attends; or None) as the additive float mask eager attention adds to its scores."""
    if mask is not None and mask.dtype != torch.bool:
        return mask
    q_len, kv_len = query.shape[-2], key.shape[-2]
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    if mask is None:
        if not (causal and q_len > 1):
            return None
        mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril(kv_len - q_len)
    return torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(
        ~mask, torch.finfo(query.dtype).min)


def register_attention(name: str, function: Callable, mask: str = "eager") -> str:
    """Register an attention function and, under the same name, transformers' ``mask`` ("eager" or "sdpa")
    mask function (without it the padding mask silently arrives as None). Returns ``name``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, {"eager": eager_mask, "sdpa": sdpa_mask}[mask])
    return name


def _route_attention(model: nn.Module, variant: str, fuse_matmul: bool = True) -> tuple[str | None, bool, str]:
    """Switch a transformers model's attention to the variant: (implementation, covered, why)."""
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if config is None or not hasattr(model, "set_attn_implementation"):
        return None, False, "not a transformers model: only nn.Dropout modules are replaced"
    if _eager_attention_of(model) is None or not model._can_set_attn_implementation():
        return current, False, (
            f"{type(model).__name__} does not use transformers' AttentionInterface (its attention "
            "calls F.dropout directly); attention dropout stays torch's"
        )
    base = _base_implementation(current)
    if base is None:
        return current, False, (
            f"attention runs in {current!r}, which applies its own dropout; build the model with "
            "attn_implementation='eager' or 'sdpa' to route it through PM-Drop"
        )
    if variant == "standard":
        model.set_attn_implementation(base)
        return base, False, f"standard: the model's own {base} attention and torch's dropout"
    name = register_attention(attention_name(variant, base, fuse_matmul),
                              attention_function(variant, base, fuse_matmul), mask=base)
    model.set_attn_implementation(name)
    if base == "sdpa":
        return name, True, (f"sdpa attention routed through {name}: SDPA's fused kernels as before (no mask "
                            "kept); where SDPA would fall back to math, eager attention with PM-Drop")
    return name, True, f"eager attention routed through {name}"


def swap_modules(model: nn.Module, match: Callable, build: Callable) -> list[str]:
    """Replace, in place, every submodule for which ``match(module, parent)`` holds by ``build(module)``.

    One new module per distinct old one, so a module shared by several parents stays shared. ``build``
    may return the module itself (updated in place); only then can the root (``parent`` None) count.
    Returns the names matched, in ``named_modules`` order.
    """
    new_of: dict[int, nn.Module] = {}
    names = []
    for name, module in list(model.named_modules(remove_duplicate=False)):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if name else None
        if not match(module, parent):
            continue
        if id(module) not in new_of:
            new_of[id(module)] = build(module)
        if new_of[id(module)] is not module:
            if parent is None:
                continue  # the root cannot be replaced in place
            setattr(parent, attr, new_of[id(module)])
        names.append(name)
    return names


def reject_wrappers(model: nn.Module) -> None:
    """Raise ``TypeError`` for a DDP/DataParallel wrapper: surgery belongs on the bare model."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        raise TypeError("apply() got a DDP/DataParallel wrapper: call apply(model.module, ...), then wrap again")


def _replace_dropout_modules(model: nn.Module, variant: str) -> list[str]:
    def build(module: nn.Dropout) -> nn.Module:
        if isinstance(module, PackedDropout):  # applied before: switch its variant
            module.variant = variant
            return module
        return PackedDropout(module.p, variant, module.inplace).train(module.training)

    return swap_modules(model, lambda module, parent: isinstance(module, nn.Dropout), build)


def apply(
    model: nn.Module, variant: str, targets: Sequence[str] = TARGETS, fuse_residual: bool = True,
    fuse_attention_matmul: bool = True,
) -> SurgeryReport:
    """Route ``model``'s dropout through ``variant``, in place.

    Args:
        model: any ``nn.Module``; transformers models also get their attention dropout routed.
        variant: one of :data:`pmexp.dropout.VARIANTS` (``standard`` leaves torch's dropout).
        targets: ``"hidden"`` (``nn.Dropout`` modules) and/or ``"attention"``.
        fuse_residual: for ``packed`` and ``seeded`` with ``hidden`` targeted, run BERT-style
            ``dropout(dense(x)) + residual`` blocks as one dropout-add pass
            (:mod:`pmexp.dropout.fusion`; same numbers, fewer bytes and launches). Default: True.
        fuse_attention_matmul: in eager attention (and SDPA's eager fallback), the dropout's output
            goes into the next matmul without matmul's saved copy of it (:mod:`pmexp.dropout.attention_matmul`;
            same numbers, one probability-sized tensor less per layer; on CUDA only for packed and
            seeded under autocast, where their kernels fold autocast's cast and so cost nothing, and
            for calls of ``masked_matmul.MIN_PROBABILITIES`` (16M) probabilities or more). False keeps
            what the variant alone saves (its mask), e.g. to measure that. Default: True.

    Returns:
        A :class:`SurgeryReport`: modules replaced, whether attention dropout is covered, why.

    Raises:
        ValueError: unknown variant or target.
        TypeError: a DDP/DataParallel wrapper (apply to ``.module``, then wrap again).
    """
    check_variant(variant)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"targets must be a non-empty subset of {TARGETS}, got {targets!r}")
    reject_wrappers(model)

    report = SurgeryReport(variant, targets)
    if variant in ("packed", "seeded"):
        from pmexp.dropout import native  # not at import: `python -m pmexp.dropout.native` must find it unimported

        report.kernels = native.backend()  # builds the C++ extension here (once), not inside a timed step
    if "hidden" in targets:
        report.modules = _replace_dropout_modules(model, variant)
    if fuse_residual and "hidden" in targets and variant in ("packed", "seeded"):
        report.fused_residual = fuse_residual_dropout(model)
    else:
        unfuse_residual_dropout(model)
    if "attention" in targets:
        impl, covered, why = _route_attention(model, variant, fuse_attention_matmul)
        report.attention_implementation, report.attention_covered, report.attention_reason = impl, covered, why
        report.fused_attention_matmul = covered and fuse_attention_matmul
    else:
        report.attention_implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
        report.attention_reason = "not targeted"
    if variant != "standard" and not report.modules and not report.attention_covered:
        warnings.warn(f"pmexp.dropout.apply matched nothing in {type(model).__name__}: {report}",
                      PMDropSurgeryWarning, stacklevel=2)
    else:
        log.info("%s", report)
    return report
