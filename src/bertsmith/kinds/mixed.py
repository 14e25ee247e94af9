"""Kind ``mixed``: ConvBERT's mixed attention (``modeling.mixed_attention``): ``heads`` self-attention heads
beside heads·(γ−1) span-based dynamic convolution heads of width ``v_dim``, for the head ratio γ =
``head_ratio`` ≥ 2, with kernel ``conv_kernel``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ..fields import Int
from ..modeling.mixed_attention import MixedAttention
from .base import AttentionSpec, Choice, KindModule


class MixedSpec(AttentionSpec):
    kind: Literal["mixed"] = "mixed"
    conv_kernel: Int | None = Field(default=None, gt=0)  # None: refused with the module's own message
    head_ratio: Int | None = Field(default=None, ge=2)
    module: ClassVar[type[KindModule]] = MixedAttention
    choices: ClassVar[dict[str, Choice]] = {"conv_kernel": Choice([9]), "head_ratio": Choice([2])}
    examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {"conv_kernel": 3, "head_ratio": 2},
        {"conv_kernel": 5, "head_ratio": 3},
    )
    legacy: ClassVar[bool] = True

    @property
    def conv_heads(self) -> int:
        return self.heads * (self.head_ratio - 1)

    @property
    def all_heads(self) -> int:
        return self.heads + self.conv_heads

    def summary(self) -> str:
        return super().summary() + f" conv{self.conv_heads}x{self.conv_kernel}"
