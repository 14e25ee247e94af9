"""Kind ``dense``: Linear → activation → Linear (``modeling.ffn``), the family's fields only. Cut from a
larger dense FFN, it keeps the leading neurons."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from ..modeling.ffn import DenseFFN
from .base import FFNSpec, KindModule, Slicer


class DenseSlicer(Slicer):
    def problem(self, source: Any, target: Any) -> str | None:
        if target.activation != source.activation:
            return f"activation: {target.activation!r} differs from the source's {source.activation!r}"
        return None


class DenseSpec(FFNSpec):
    kind: Literal["dense"] = "dense"
    module: ClassVar[type[KindModule]] = DenseFFN
    slicer: ClassVar[Slicer | None] = DenseSlicer(sources=("dense",), units=True)
    legacy: ClassVar[bool] = True
