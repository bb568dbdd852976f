"""Model surgery: swap a BERT-family model's GELU, output LayerNorms and attention for Tempo's.

- ``gelu``: ``transformers.activations.GELUActivation`` using ``F.gelu`` and ``nn.GELU()`` (exact,
  erf form) become :class:`TempoGELU` (``BertIntermediate.intermediate_act_fn``).
- ``layernorm``: the ``nn.LayerNorm`` of modules whose class name ends in ``Output``
  (``BertSelfOutput``, ``BertOutput``) become :class:`TempoLayerNorm` sharing the parameters:
  their output is the next linear layer's input, so keeping it instead of the input is a saving.
  The embeddings' LayerNorm is left alone (dropout follows it, so its output is not otherwise
  kept and Tempo would save nothing).
- ``attention``: an attention function is registered with transformers' ``AttentionInterface``
  (and ``eager_mask`` with ``AttentionMaskInterface``, without which the padding mask arrives as
  None) under ``pmexp_tempo_<variant>``. Only models whose ``eager_attention_forward`` is, in
  source, BERT's are routed (RoBERTa, ELECTRA, XLM-R, CamemBERT in transformers 5.17), since the
  registered function re-implements that math; the model must use eager attention.

Calling :func:`pmexp.dropout.apply` afterwards switches attention to its own function; route the
hidden dropout with ``pmexp.dropout.apply(model, variant, targets=("hidden",))``.
"""

from __future__ import annotations

import inspect
import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import nn

from pmexp.dropout.functional import check_variant
from pmexp.dropout.surgery import register_attention, reject_wrappers, swap_modules
from pmexp.tempo.attention import tempo_attention
from pmexp.tempo.gelu import TempoGELU
from pmexp.tempo.layernorm import TempoLayerNorm

__all__ = ["KINDS", "apply", "TempoReport", "TempoSurgeryWarning", "attention_name"]

log = logging.getLogger(__name__)
KINDS = ("gelu", "layernorm", "attention")


class TempoSurgeryWarning(UserWarning):
    """Tempo surgery matched nothing: the model is unchanged."""


@dataclass
class TempoReport:
    """What :func:`apply` changed: module names by kind, and the attention routing."""

    variant: str
    packed: bool
    kinds: tuple[str, ...]
    gelu: list[str] = field(default_factory=list)
    layernorm: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    attention_implementation: str | None = None
    attention_reason: str = ""

    @property
    def counts(self) -> dict[str, int]:
        return {kind: len(getattr(self, kind)) for kind in KINDS}

    @property
    def replaced(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kinds": list(self.kinds), "counts": self.counts}

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts.items())
        return f"pmexp tempo ({self.variant}, packed={self.packed}): {counts}; attention: {self.attention_reason}"


def attention_name(variant: str) -> str:
    """The name under which a variant's Tempo attention function is registered."""
    return f"pmexp_tempo_{variant}"


def _is_exact_gelu(module: nn.Module) -> bool:
    if isinstance(module, nn.GELU):
        return module.approximate == "none"
    return type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is F.gelu


def _bert_eager_source() -> str:
    from transformers.models.bert import modeling_bert

    return inspect.getsource(modeling_bert.eager_attention_forward)


def _route_attention(model: nn.Module, variant: str) -> tuple[str | None, list[str], str]:
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if config is None or not hasattr(model, "set_attn_implementation"):
        return None, [], "not a transformers model"
    eager = getattr(sys.modules.get(type(model).__module__), "eager_attention_forward", None)
    if eager is None or inspect.getsource(eager) != _bert_eager_source():
        return current, [], f"{type(model).__name__}'s eager attention is not BERT's; left as is"
    if current != "eager" and not str(current).startswith("pmexp_"):
        return (
            current,
            [],
            (
                f"attention runs in {current!r}; build the model with attn_implementation='eager' "
                "to route it through Tempo"
            ),
        )
    name = register_attention(attention_name(variant), tempo_attention(variant))
    model.set_attn_implementation(name)
    modules = [n for n, m in model.named_modules() if type(m).__name__.endswith("SelfAttention")]
    return name, modules, f"eager attention routed through {name}"


def apply(model: nn.Module, variant: str = "packed", packed: bool = True, kinds: Sequence[str] = KINDS) -> TempoReport:
    """Swap ``model``'s GELU, output LayerNorms and attention for Tempo's, in place.

    Args:
        model: a BERT-family transformers model (other modules: only GELU/LayerNorm are matched).
        variant: attention dropout variant, one of :data:`pmexp.dropout.VARIANTS`. Default: ``"packed"``.
        packed: keep GELU's branch mask as bits (default) or bool (Tempo's original).
        kinds: any of ``"gelu"``, ``"layernorm"``, ``"attention"``. Default: all.

    Returns:
        A :class:`TempoReport` (names replaced by kind; ``.counts``).

    Raises:
        ValueError: unknown variant or kind.
        TypeError: a DDP/DataParallel wrapper (apply to ``.module``, then wrap again).
    """
    check_variant(variant)
    kinds = tuple(kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}")
    reject_wrappers(model)

    report = TempoReport(variant, packed, kinds)
    if "gelu" in kinds:
        report.gelu = swap_modules(
            model, lambda m, parent: _is_exact_gelu(m), lambda m: TempoGELU(packed).train(m.training)
        )
    if "layernorm" in kinds:
        report.layernorm = swap_modules(
            model,
            lambda m, parent: type(m) is nn.LayerNorm and type(parent).__name__.endswith("Output"),
            TempoLayerNorm.from_layer_norm,
        )
    if "attention" in kinds:
        report.attention_implementation, report.attention, report.attention_reason = _route_attention(model, variant)
    else:
        report.attention_reason = "not targeted"
    if not report.replaced:
        warnings.warn(
            f"pmexp.tempo.apply matched nothing in {type(model).__name__}: {report}", TempoSurgeryWarning, stacklevel=2
        )
    else:
        log.info("%s", report)
    return report
