"""Feed-forward networks of kind ``dense`` and ``grouped`` (ConvBERT's grouped linear), post-LN."""

from __future__ import annotations

import torch
from torch import nn

from .expr import ACTIVATIONS
from .fast import dropout_add


def _activation_problem(spec) -> str | None:
    """The rule of the Linear→act→Linear kinds (dense, grouped): a known activation."""
    if spec.activation not in ACTIVATIONS:
        return f"activation: unknown activation {spec.activation!r} (known: {', '.join(ACTIVATIONS)})"
    return None


class DenseFFN(nn.Module):
    """x → LN(x + dropout(W_2 · act(W_1 x)))."""

    def __init__(self, spec, hidden: int, *, eps: float, dropout: float):
        super().__init__()
        self.up = self.linear(hidden, spec.size, spec)
        self.down = self.linear(spec.size, hidden, spec)
        self.act = ACTIVATIONS[spec.activation]
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def linear(n_in: int, n_out: int, spec) -> nn.Module:
        return nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(dropout_add(x, self.down(self.act(self.up(x))), self.dropout))

    @staticmethod
    def problem(spec, hidden: int) -> str | None:
        return _activation_problem(spec)

    @staticmethod
    def count_params(spec, hidden: int) -> int:
        return 2 * hidden * spec.size + spec.size + 3 * hidden

    @staticmethod
    def count_flops(spec, hidden: int, seq_len: int) -> int:
        return 2 * seq_len * 2 * hidden * spec.size


class GroupedLinear(nn.Module):
    """Block-diagonal linear: the input channels split into ``groups`` groups, each with its own
    [in/g, out/g] weight; full-width bias; no channel shuffle (ConvBERT's GDense)."""

    def __init__(self, n_in: int, n_out: int, groups: int):
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(groups, n_in // groups, n_out // groups))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        g, n_in, n_out = self.weight.shape
        x = x.reshape(-1, g, n_in).transpose(0, 1)  # [g, N, in/g]
        y = torch.bmm(x, self.weight).transpose(0, 1)  # [N, g, out/g]
        return y.reshape(*lead, g * n_out) + self.bias


class GroupedFFN(DenseFFN):
    """DenseFFN with both linears grouped: FFN parameters shrink by the factor ``groups``."""

    @staticmethod
    def linear(n_in: int, n_out: int, spec) -> nn.Module:
        return GroupedLinear(n_in, n_out, spec.groups)

    @staticmethod
    def problem(spec, hidden: int) -> str | None:
        if hidden % spec.groups or spec.size % spec.groups:
            return f"groups: {spec.groups} groups must divide hidden ({hidden}) and size ({spec.size})"
        return _activation_problem(spec)

    @staticmethod
    def count_params(spec, hidden: int) -> int:
        return 2 * hidden * spec.size // spec.groups + spec.size + 3 * hidden

    @staticmethod
    def count_flops(spec, hidden: int, seq_len: int) -> int:
        return 2 * seq_len * 2 * hidden * spec.size // spec.groups
