"""Exact parameter counts and FLOP counts of an ArchSpec.

``params(spec)`` is the number of parameters of ``BertsmithModel(spec)`` (embeddings, layers, the
relative position bias table and the pooler when present; task heads excluded), checked against the
built module by the tests.

``flops(spec, seq_len)`` counts one forward pass over one sequence of ``seq_len`` tokens as
2 × multiply-accumulates of the matrix-shaped work: every linear projection (embedding projection,
attention Q/K/V/output, FFN linears, conv-branch projections, the pooler on one token), the attention
scores QKᵀ and the context scores·V (2·a·T²·(k+v) per layer), and ConvBERT's depthwise convolution,
kernel generation and dynamic convolution. Not counted: embedding look-ups, biases, LayerNorm,
softmax, activations, dropout and other element-wise work (a few percent at these sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

from .modeling.encoder import Embeddings
from .modeling.registry import ATTENTION, FFN


@dataclass(frozen=True)
class CostRow:
    """One component of the model: its name, parameters and FLOPs at the given sequence length."""

    component: str
    params: int
    flops: int


def breakdown(spec, seq_len: int = 128) -> list[CostRow]:
    """Per-component costs: embeddings, each layer's attention and FFN, the relative position bias, pooler."""
    h = spec.hidden
    rows = [CostRow("embeddings", Embeddings.count_params(spec), Embeddings.count_flops(spec, seq_len))]
    for i, layer in enumerate(spec.layers):
        att, ffn = ATTENTION[layer.attention.kind], FFN[layer.ffn.kind]
        rows.append(
            CostRow(
                f"layer {i} attention",
                att.count_params(layer.attention, h),
                att.count_flops(layer.attention, h, seq_len),
            )
        )
        rows.append(CostRow(f"layer {i} ffn", ffn.count_params(layer.ffn, h), ffn.count_flops(layer.ffn, h, seq_len)))
    buckets = spec.relative_attention_buckets
    if buckets:  # one table for all layers; adding the bias to the scores is no multiply-accumulate
        rows.append(CostRow("relative position bias", buckets * max(la.attention.heads for la in spec.layers), 0))
    if spec.pooler:
        rows.append(CostRow("pooler", h * h + h, 2 * h * h))
    return rows


def params(spec) -> int:
    """Exact parameter count of the encoder built from ``spec`` (embeddings and pooler included)."""
    return sum(r.params for r in breakdown(spec, 1))


def encoder_params(spec) -> int:
    """Parameters outside the embeddings (layers and pooler): the 'non-embedding' size."""
    return params(spec) - Embeddings.count_params(spec)


def flops(spec, seq_len: int = 128) -> int:
    """Forward FLOPs for one sequence of ``seq_len`` tokens (see the module docstring)."""
    return sum(r.flops for r in breakdown(spec, seq_len))
