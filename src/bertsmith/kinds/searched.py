"""Kind ``searched``: EfficientBERT's searched FFN (``modeling.searched_ffn``): an ``expression`` such as
``tanh(L(gelu(L(x))))`` in ``stack`` stacked blocks of inner width ``size`` (``activation`` unused)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field

from ..fields import Int
from ..modeling.expr import check, parse
from ..modeling.searched_ffn import SearchedFFN
from .base import Choice, FFNSpec, KindModule


def _buildable(text: str) -> str:
    """An expression that parses and can be built (two nested linears over x)."""
    check(parse(text))
    return text


Expression = Annotated[str, AfterValidator(_buildable)]


class SearchedSpec(FFNSpec):
    kind: Literal["searched"] = "searched"
    expression: str | None = None  # None, or one that cannot be built: refused with the module's message
    stack: Int = Field(default=1, gt=0)
    module: ClassVar[type[KindModule]] = SearchedFFN
    choices: ClassVar[dict[str, Choice]] = {"expression": Choice(["L(gelu(L(x)))"], Expression)}
    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"expression": "L(gelu(L(x)))", "stack": 1, "size": 24, "activation": "gelu"},
        {"expression": "L(relu(mul(L(x), x)))", "stack": 2, "size": 32, "activation": "gelu"},
    )
    legacy: ClassVar[bool] = True

    def summary(self) -> str:
        return super().summary() + f" {self.stack}x {self.expression}"
