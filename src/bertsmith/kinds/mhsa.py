"""Kind ``mhsa``: multi-head self-attention (``modeling.attention``), the family's fields only."""

from __future__ import annotations

from typing import ClassVar, Literal

from ..modeling.attention import SelfAttention
from .base import AttentionSpec, KindModule


class MHSASpec(AttentionSpec):
    kind: Literal["mhsa"] = "mhsa"
    module: ClassVar[type[KindModule]] = SelfAttention
    legacy: ClassVar[bool] = True
