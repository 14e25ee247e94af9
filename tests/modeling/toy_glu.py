"""A toy FFN kind for the tests, registered from here alone: ``glu``, a gated linear unit
x → LN(x + W_down(act(W_gate x) ⊙ W_up x)), with one field of its own (``bias``: whether its three
linears have biases), cut from a larger one by its leading neurons. Importing this module registers
nothing; ``register(GLUSpec)`` does."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from bertsmith.kinds import FFNSpec, KindModule, Slicer
from bertsmith.modeling.expr import ACTIVATIONS
from bertsmith.modeling.fast import dropout_add


class GLUFFN(nn.Module):
    def __init__(self, spec, hidden: int, *, eps: float, dropout: float):
        super().__init__()
        self.gate = nn.Linear(hidden, spec.size, bias=spec.bias)
        self.up = nn.Linear(hidden, spec.size, bias=spec.bias)
        self.down = nn.Linear(spec.size, hidden, bias=spec.bias)
        self.act = ACTIVATIONS[spec.activation]
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(dropout_add(x, self.down(self.act(self.gate(x)) * self.up(x)), self.dropout))

    @staticmethod
    def problem(spec, hidden: int) -> str | None:
        if spec.activation not in ACTIVATIONS:
            return f"activation: unknown activation {spec.activation!r}"
        return None

    @staticmethod
    def count_params(spec, hidden: int) -> int:
        biases = 2 * spec.size + hidden if spec.bias else 0
        return 3 * hidden * spec.size + biases + 2 * hidden

    @staticmethod
    def count_flops(spec, hidden: int, seq_len: int) -> int:
        return 2 * seq_len * 3 * hidden * spec.size  # three matrix products; the gating product is element-wise


class GLUSpec(FFNSpec):
    kind: Literal["glu"] = "glu"
    bias: bool = True
    module: ClassVar[type[KindModule]] = GLUFFN
    slicer: ClassVar[Slicer | None] = Slicer(sources=("glu",))  # the leading neurons of each linear

    def summary(self) -> str:
        return super().summary() + ("" if self.bias else " nobias")
