"""Kind ``mhsa``: multi-head self-attention (``modeling.attention``), the family's fields only. Cut from
a larger mhsa layer, it keeps the leading heads and, in each, the leading query/key and value dims."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from ..modeling.attention import SelfAttention
from .base import AttentionSpec, KindModule, Slicer


class HeadSlicer(Slicer):
    """The fused projection's rows and the output projection's columns, head by head."""

    def cut(self, name: str, tensor: torch.Tensor, source: Any, target: Any, hidden: int) -> torch.Tensor | None:
        if name.startswith("qkv."):
            return _qkv(tensor, source, target, hidden)
        if name == "out.weight":
            return _out(tensor, source, target, hidden)
        return None


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


class MHSASpec(AttentionSpec):
    kind: Literal["mhsa"] = "mhsa"
    module: ClassVar[type[KindModule]] = SelfAttention
    slicer: ClassVar[Slicer | None] = HeadSlicer(sources=("mhsa",), units=True)
    legacy: ClassVar[bool] = True
