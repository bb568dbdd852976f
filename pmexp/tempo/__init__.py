"""Tempo-style memory-saving layers (Andoorveedu et al., NeurIPS 2022) with PM-Drop's packed masks.

Each layer keeps, for backward, a tensor that is kept alive anyway (or a smaller one) in place
of its input, which can then be freed after forward:

- :class:`TempoGELU` / :func:`gelu`: exact GELU saves its *output* (the next linear layer saves
  it too, so it is shared) plus 1 bit per element, the branch ``x >= X_MIN`` (GELU is not
  monotonic); backward recovers ``x`` from output and branch. Stock saves the input: 4 bytes
  per element (float32) become 1/8 byte. ``packed=False`` keeps a bool mask (Tempo's original).
- :class:`TempoLayerNorm` / :func:`layer_norm`: saves the output (shared with the next linear)
  and ``rstd``, recovers ``x_hat = (y - bias) / weight``; stock saves input, mean and rstd.
- :func:`softmax_dropout_matmul`: attention's softmax -> dropout -> ``probs @ V`` saves the
  softmax output, the dropout mask (bits, bool for ``standard``, or only a seed for ``seeded``)
  and ``V``, not the dropout output, which backward recomputes. Masks are drawn exactly as
  :func:`pmexp.dropout.dropout` draws them, so losses match the untouched model under one seed.
- :func:`apply`: surgery for BERT-family transformers models; returns a :class:`TempoReport`.

Imports torch alone; transformers is imported inside :func:`apply`.
"""

from pmexp.tempo.attention import softmax_dropout_matmul, tempo_attention
from pmexp.tempo.gelu import X_MIN, Y_MIN, TempoGELU, gelu
from pmexp.tempo.layernorm import TempoLayerNorm, layer_norm
from pmexp.tempo.surgery import KINDS, TempoReport, TempoSurgeryWarning, apply, attention_name

__all__ = [
    "KINDS",
    "X_MIN",
    "Y_MIN",
    "gelu",
    "TempoGELU",
    "layer_norm",
    "TempoLayerNorm",
    "softmax_dropout_matmul",
    "tempo_attention",
    "apply",
    "attention_name",
    "TempoReport",
    "TempoSurgeryWarning",
]
