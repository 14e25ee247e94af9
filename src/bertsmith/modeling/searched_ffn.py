"""EfficientBERT's searched FFN (``searched``): ``stack`` blocks, each an expression over two linears
(the EfficientBERT paper), then dropout, residual and LayerNorm. With ``L(gelu(L(x)))`` and one block it
is exactly a dense FFN."""

from __future__ import annotations

import torch
from torch import nn

from .expr import ExprError, evaluate, linear_shapes, parse
from .fast import dropout_add


class _Block(nn.Module):
    def __init__(self, tree, hidden: int, inner: int, *, eps: float, dropout: float):
        super().__init__()
        (i1, o1), (i2, o2) = linear_shapes(tree, hidden, inner)
        self.tree = tree
        self.lin1 = nn.Linear(i1, o1)
        self.lin2 = nn.Linear(i2, o2)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(dropout_add(x, evaluate(self.tree, x, (self.lin1, self.lin2)), self.dropout))


class SearchedFFN(nn.Module):
    def __init__(self, spec, hidden: int, *, eps: float, dropout: float):
        super().__init__()
        tree = parse(spec.expression)
        self.blocks = nn.ModuleList(
            _Block(tree, hidden, spec.size, eps=eps, dropout=dropout) for _ in range(spec.stack)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    @staticmethod
    def problem(spec, hidden: int) -> str | None:
        if spec.expression is None:
            return "expression: kind 'searched' needs an expression such as 'L(gelu(L(x)))'"
        try:
            linear_shapes(parse(spec.expression), hidden, spec.size)
        except ExprError as exc:
            return f"expression: {exc}"
        return None

    @staticmethod
    def count_params(spec, hidden: int) -> int:
        (i1, o1), (i2, o2) = linear_shapes(parse(spec.expression), hidden, spec.size)
        return spec.stack * ((i1 + 1) * o1 + (i2 + 1) * o2 + 2 * hidden)

    @staticmethod
    def count_flops(spec, hidden: int, seq_len: int) -> int:
        (i1, o1), (i2, o2) = linear_shapes(parse(spec.expression), hidden, spec.size)
        return spec.stack * 2 * seq_len * (i1 * o1 + i2 * o2)
