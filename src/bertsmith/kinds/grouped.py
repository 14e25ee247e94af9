"""Kind ``grouped``: ConvBERT's grouped FFN (``modeling.ffn``), both linears block-diagonal in ``groups``
groups."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ..fields import Int
from ..modeling.ffn import GroupedFFN
from .base import Choice, FFNSpec, KindModule


class GroupedSpec(FFNSpec):
    kind: Literal["grouped"] = "grouped"
    groups: Int = Field(default=1, gt=0)
    module: ClassVar[type[KindModule]] = GroupedFFN
    choices: ClassVar[dict[str, Choice]] = {"groups": Choice([2])}
    examples: ClassVar[tuple[dict[str, Any], ...]] = ({"groups": 2}, {"groups": 4})
    legacy: ClassVar[bool] = True

    def summary(self) -> str:
        return super().summary() + f" g{self.groups}"
