"""Slice a larger model's weights into a smaller ArchSpec: ``slice_weights``.

The sub-network keeps the leading part of every dimension: the first ``hidden`` channels, the
first heads of each layer with the first query/key and value dims of each head, the first FFN
neurons, and the source layers named by ``layers`` (evenly spaced by default). Dropping heads,
FFN neurons or whole layers this way gives exactly the source network with those units removed;
a narrower hidden size or head dim is an approximation (LayerNorm statistics and the attention
scale change) and serves as an initialization for distillation. Ordering the units by importance
before slicing is the caller's choice.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..arch import ArchSpec
from ..errors import SpecError

SLICEABLE_ATTENTION, SLICEABLE_FFN = ("mhsa",), ("dense",)


def even_layers(target_layers: int, source_layers: int) -> list[int]:
    """Source layer (0-based) for each target layer: evenly spaced, ending at the source's last
    layer (the TinyBERT map used by the hidden-state loss)."""
    return [max(1, round((i + 1) * source_layers / target_layers)) - 1 for i in range(target_layers)]


def check_sliceable(source: ArchSpec, target: ArchSpec, layers: Sequence[int]) -> None:
    """Raise ``SpecError`` naming the first dimension of ``target`` that ``source`` cannot supply."""
    se, te = source.embeddings, target.embeddings
    if target.hidden > source.hidden:
        raise SpecError(f"hidden: {target.hidden} is larger than the source's {source.hidden}")
    if (te.vocab_size, te.size, te.trigram, te.positions) != (se.vocab_size, se.size, se.trigram, se.positions):
        raise SpecError("embeddings: vocab_size, size, trigram and positions must equal the source's")
    if te.max_positions > se.max_positions or te.type_vocab_size > se.type_vocab_size:
        raise SpecError("embeddings: max_positions and type_vocab_size cannot exceed the source's")
    if se.size is not None:
        raise SpecError("embeddings.size: slicing factorized embeddings is not supported")
    if target.pooler and not source.pooler:
        raise SpecError("pooler: the source has no pooler to slice")
    if len(layers) != target.num_layers:
        raise SpecError(f"layers: {len(layers)} source layers given for {target.num_layers} target layers")
    for i, j in enumerate(layers):
        if not 0 <= j < source.num_layers:
            raise SpecError(f"layers[{i}]: source layer {j} does not exist (the source has {source.num_layers})")
        s, t = source.layers[j], target.layers[i]
        for part, kinds, kind in (("attention", SLICEABLE_ATTENTION, t.attention.kind),
                                  ("ffn", SLICEABLE_FFN, t.ffn.kind)):
            source_kind = getattr(s, part).kind
            if kind not in kinds or source_kind != kind:
                raise SpecError(f"layers[{i}].{part}.kind: slicing supports {', '.join(kinds)} on both sides "
                                f"(target {kind!r}, source layer {j} {source_kind!r})")
        if t.ffn.activation != s.ffn.activation:
            raise SpecError(f"layers[{i}].ffn.activation: {t.ffn.activation!r} differs from the source's "
                            f"{s.ffn.activation!r}")
        for name, small, big in (("attention.heads", t.attention.heads, s.attention.heads),
                                 ("attention.qk_dim", t.attention.qk_dim, s.attention.qk_dim),
                                 ("attention.v_dim", t.attention.v_dim, s.attention.v_dim),
                                 ("ffn.size", t.ffn.size, s.ffn.size)):
            if small > big:
                raise SpecError(f"layers[{i}].{name}: {small} is larger than source layer {j}'s {big}")


def _leading(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return tensor[tuple(slice(0, n) for n in shape)]


def _qkv(tensor: torch.Tensor, src, dst, hidden: int) -> torch.Tensor:
    """Rows [Q heads | K heads | V heads] of the fused projection, each head's first dims kept."""
    parts = tensor.split([src.heads * src.qk_dim, src.heads * src.qk_dim, src.heads * src.v_dim])
    dims = (dst.qk_dim, dst.qk_dim, dst.v_dim)
    out = []
    for part, dim in zip(parts, dims):
        per_head = part.reshape(src.heads, -1, *part.shape[1:])[: dst.heads, :dim]
        out.append(per_head.reshape(dst.heads * dim, *part.shape[1:]))
    return torch.cat(out)[(slice(None),) + ((slice(0, hidden),) if tensor.dim() == 2 else ())]


def _out(tensor: torch.Tensor, src, dst, hidden: int) -> torch.Tensor:
    """Columns (heads × v dims) of the attention output projection."""
    per_head = tensor.reshape(tensor.shape[0], src.heads, src.v_dim)[:hidden, : dst.heads, : dst.v_dim]
    return per_head.reshape(hidden, dst.heads * dst.v_dim)


def slice_weights(
    source: nn.Module, source_spec: ArchSpec, target: nn.Module, target_spec: ArchSpec,
    layers: Sequence[int] | None = None,
) -> None:
    """Load ``target`` (a bertsmith model of ``target_spec``) with the sub-network of ``source``.

    Both are the same class (``BertsmithModel`` or a model with a task head, e.g.
    ``BertsmithForSequenceClassification``, whose heads must have the same number of outputs).
    ``layers``: the source layer (0-based) behind each target layer; default ``even_layers``.
    """
    layers = list(layers) if layers is not None else even_layers(target_spec.num_layers, source_spec.num_layers)
    check_sliceable(source_spec, target_spec, layers)
    prefix = "encoder." if hasattr(target, "encoder") else ""
    mine = source.state_dict()
    state = {}
    for name, wanted in target.state_dict().items():
        parts = name[len(prefix):].split(".") if name.startswith(prefix) else []
        src_name = name
        if parts[:1] == ["layers"]:
            i = int(parts[1])
            src_name = f"{prefix}layers.{layers[i]}." + ".".join(parts[2:])
            s_att, t_att = source_spec.layers[layers[i]].attention, target_spec.layers[i].attention
        if src_name not in mine:
            raise SpecError(f"{name}: the source model has no {src_name} to slice")
        tensor = mine[src_name]
        if parts[:1] == ["layers"] and parts[2:4] == ["attention", "qkv"]:
            tensor = _qkv(tensor, s_att, t_att, target_spec.hidden)
        elif parts[:1] == ["layers"] and parts[2:5] == ["attention", "out", "weight"]:
            tensor = _out(tensor, s_att, t_att, target_spec.hidden)
        else:
            if name == "head.out.weight" and tensor.shape[0] != wanted.shape[0]:
                raise SpecError(f"{name}: the source head has {tensor.shape[0]} outputs, the target {wanted.shape[0]}")
            if tensor.dim() != len(wanted.shape) or any(s < w for s, w in zip(tensor.shape, wanted.shape)):
                raise SpecError(f"{name}: source shape {tuple(tensor.shape)} cannot give {tuple(wanted.shape)}")
            tensor = _leading(tensor, wanted.shape)
        state[name] = tensor.clone()
    target.load_state_dict(state)
