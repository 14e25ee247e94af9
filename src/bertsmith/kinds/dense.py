"""Kind ``dense``: Linear → activation → Linear (``modeling.ffn``), the family's fields only."""

from __future__ import annotations

from typing import ClassVar, Literal

from ..modeling.ffn import DenseFFN
from .base import FFNSpec, KindModule


class DenseSpec(FFNSpec):
    kind: Literal["dense"] = "dense"
    module: ClassVar[type[KindModule]] = DenseFFN
    legacy: ClassVar[bool] = True
