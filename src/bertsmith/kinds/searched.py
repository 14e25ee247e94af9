"""Kind ``searched``: EfficientBERT's searched FFN (``modeling.searched_ffn``): an ``expression`` such as
``tanh(L(gelu(L(x))))`` in ``stack`` stacked blocks of inner width ``size`` (``activation`` unused). It is
cut from a searched FFN (its leading blocks and neurons) or from a dense one (the blocks' first linear and
LayerNorm are the dense FFN's, the first block's second linear is its down projection and the later
blocks' are zero: each later block then adds nothing before its LayerNorm)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field

from ..fields import Int
from ..modeling.expr import check, parse
from ..modeling.searched_ffn import SearchedFFN
from .base import Choice, FFNSpec, KindModule, Slicer


def _buildable(text: str) -> str:
    """An expression that parses and can be built (two nested linears over x)."""
    check(parse(text))
    return text


Expression = Annotated[str, AfterValidator(_buildable)]
_FROM_DENSE = {"lin1": "up", "lin2": "down", "norm": "norm"}  # a block's modules → the dense FFN's


class BlockSlicer(Slicer):
    def problem(self, source: Any, target: Any) -> str | None:
        if source.kind == target.kind and target.stack > source.stack:
            return f"stack: {target.stack} is more than the source's {source.stack}"
        return None

    def source_name(self, name: str, source: Any) -> tuple[str, bool]:
        if source.kind == "searched":
            return name, False
        _, block, module, tensor = name.split(".")  # blocks.B.MODULE.TENSOR
        return f"{_FROM_DENSE[module]}.{tensor}", module == "lin2" and block != "0"


class SearchedSpec(FFNSpec):
    kind: Literal["searched"] = "searched"
    expression: str | None = None  # None, or one that cannot be built: refused with the module's message
    stack: Int = Field(default=1, gt=0)
    module: ClassVar[type[KindModule]] = SearchedFFN
    slicer: ClassVar[Slicer | None] = BlockSlicer(sources=("searched", "dense"))
    choices: ClassVar[dict[str, Choice]] = {"expression": Choice(["L(gelu(L(x)))"], Expression)}
    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"expression": "L(gelu(L(x)))", "stack": 1, "size": 24, "activation": "gelu"},
        {"expression": "L(relu(mul(L(x), x)))", "stack": 2, "size": 32, "activation": "gelu"},
    )
    legacy: ClassVar[bool] = True

    def summary(self) -> str:
        return super().summary() + f" {self.stack}x {self.expression}"
