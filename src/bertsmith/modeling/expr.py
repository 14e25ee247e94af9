"""The FFN expression language of EfficientBERT (the EfficientBERT paper): parse, print, check, evaluate.

An expression is a tree over the input ``x``, exactly two linear maps ``L``, the binary operators
``add``, ``mul`` and ``max`` and the activations below, e.g. ``tanh(L(gelu(L(x))))`` or
``L(relu(mul(L(x), x)))``. The first linear (innermost) maps the hidden width to the inner width,
the second maps back to the hidden width. Binary operators on operands of different widths keep
the first ``min`` channels of both (EfficientBERT's ``sel_min``).

Expressions are bounded: at most MAX_DEPTH nested levels (``x`` is 0 deep, ``L(x)`` 1) and MAX_NODES
operators and inputs in all. The FFN search (height at most 7, so at most 255 nodes) stays well
inside; anything larger is refused with an ExprError naming the limit, not a RecursionError.

This file depends on torch and the standard library only: it is copied next to exported models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, callable] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01
    "elu": F.elu,  # alpha 1.0
    "swish": F.silu,
}
BINARY = ("add", "mul", "max")
LINEAR = "L"
INPUT = "x"
MAX_DEPTH = 32  # nested levels of an expression
MAX_NODES = 256  # operators and inputs of an expression
_QUOTED = 60  # characters of a long expression quoted in an error message


class ExprError(ValueError):
    """An FFN expression that cannot be parsed or breaks the structural rules."""


@dataclass(frozen=True)
class Node:
    """One node of an expression tree: ``op`` is ``x``, ``L``, a binary operator or an activation."""

    op: str
    args: tuple["Node", ...] = ()

    def __str__(self) -> str:
        return format_expr(self)


_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z_0-9]*)|(\()|(\))|(,))")


def _quote(text: str) -> str:
    """``text`` quoted for a message, shortened to its start when long."""
    return repr(text) if len(text) <= _QUOTED else repr(text[:_QUOTED]) + f"... ({len(text)} characters)"


def _check_bounds(text: str, depth: int, nodes: int) -> None:
    """Refuse an expression deeper than MAX_DEPTH or with more than MAX_NODES nodes."""
    if depth > MAX_DEPTH:
        raise ExprError(f"FFN expression {_quote(text)} is {depth} levels deep, over the limit of {MAX_DEPTH}")
    if nodes > MAX_NODES:
        raise ExprError(f"FFN expression {_quote(text)} has {nodes} nodes, over the limit of {MAX_NODES}")


def parse(text: str) -> Node:
    """Parse ``text`` such as ``tanh(L(gelu(L(x))))`` into a tree; raise ExprError on bad syntax or
    beyond MAX_DEPTH / MAX_NODES."""
    tokens: list[str] = []
    pos = depth = max_depth = nodes = 0
    text = str(text)
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExprError(f"cannot parse FFN expression {_quote(text)}: unexpected character at position {pos}")
        token = next(g for g in m.groups() if g is not None)
        depth += {"(": 1, ")": -1}.get(token, 0)
        max_depth = max(max_depth, depth)
        nodes += token not in "(),"
        _check_bounds(text, max_depth, nodes)  # before the recursive descent below
        tokens.append(token)
        pos = m.end()
    node, i = _parse_at(tokens, 0, text)
    if i != len(tokens):
        raise ExprError(f"cannot parse FFN expression {_quote(text)}: unexpected {_quote(tokens[i])} after the end")
    return node


def _arity(op: str, text: str) -> int:
    if op == INPUT:
        return 0
    if op == LINEAR or op in ACTIVATIONS:
        return 1
    if op in BINARY:
        return 2
    known = ", ".join([INPUT, LINEAR, *BINARY, *ACTIVATIONS])
    raise ExprError(f"cannot parse FFN expression {_quote(text)}: unknown operator {_quote(op)} (known: {known})")


def _parse_at(tokens: list[str], i: int, text: str) -> tuple[Node, int]:
    if i >= len(tokens):
        raise ExprError(f"cannot parse FFN expression {_quote(text)}: it ends too early")
    op = tokens[i]
    if op in "(),":
        raise ExprError(f"cannot parse FFN expression {_quote(text)}: expected an operator, found {op!r}")
    arity = _arity(op, text)
    i += 1
    if arity == 0:
        return Node(op), i
    if i >= len(tokens) or tokens[i] != "(":
        raise ExprError(f"cannot parse FFN expression {_quote(text)}: {op} needs '(' and {arity} argument(s)")
    args = []
    for k in range(arity):
        arg, i = _parse_at(tokens, i + 1, text)
        args.append(arg)
        want = ")" if k == arity - 1 else ","
        if i >= len(tokens) or tokens[i] != want:
            raise ExprError(
                f"cannot parse FFN expression {_quote(text)}: {op} takes {arity} argument(s), expected {want!r}"
            )
    return Node(op, tuple(args)), i + 1


def format_expr(node: Node) -> str:
    """The canonical text of a tree: ``parse(format_expr(n)) == n``. A tree beyond MAX_DEPTH or
    MAX_NODES (only built by hand: ``parse`` refuses them) raises ExprError."""
    depth = nodes = 0
    stack = [(node, 0)]
    while stack:  # iterative: a tree of any depth is measured without recursion
        n, level = stack.pop()
        depth, nodes = max(depth, level), nodes + 1
        _check_bounds(f"{node.op}(...)" if node.args else node.op, depth, nodes)
        stack.extend((a, level + 1) for a in n.args)
    return _format(node)


def _format(node: Node) -> str:
    if not node.args:
        return node.op
    return f"{node.op}({', '.join(_format(a) for a in node.args)})"


def _postorder_linears(node: Node) -> list[Node]:
    out = []
    for a in node.args:
        out += _postorder_linears(a)
    if node.op == LINEAR:
        out.append(node)
    return out


def _contains_input(node: Node) -> bool:
    return node.op == INPUT or any(_contains_input(a) for a in node.args)


def check(node: Node) -> None:
    """Structural rules that make an expression buildable: ``x`` appears, exactly two linears, the
    second applied on top of the first (so the first maps hidden→inner, the second back to hidden)."""
    text = format_expr(node)
    if not _contains_input(node):
        raise ExprError(f"FFN expression {_quote(text)} never uses the input x")
    linears = _postorder_linears(node)
    if len(linears) != 2:
        raise ExprError(f"FFN expression {_quote(text)} must contain exactly two linear maps L, found {len(linears)}")
    first, second = linears
    if first not in _postorder_linears(second.args[0]):
        raise ExprError(f"FFN expression {_quote(text)}: the second L must be applied on top of the first")


def linear_shapes(node: Node, hidden: int, inner: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(in, out) features of the first and the second linear for a block of width ``hidden`` with
    inner width ``inner``; binary operators truncate to the narrower operand."""
    check(node)
    shapes: list[tuple[int, int]] = []

    def width(n: Node) -> int:
        if n.op == INPUT:
            return hidden
        if n.op == LINEAR:
            w_in = width(n.args[0])
            out = inner if not shapes else hidden
            shapes.append((w_in, out))
            return out
        return min(width(a) for a in n.args)

    width(node)
    return shapes[0], shapes[1]


def evaluate(node: Node, x: torch.Tensor, linears: tuple[torch.nn.Module, torch.nn.Module]) -> torch.Tensor:
    """Apply the expression to ``x`` with the two linear modules (first, second)."""
    counter = iter(linears)
    return _eval(node, x, counter)


def _eval(node: Node, x: torch.Tensor, linears) -> torch.Tensor:
    op = node.op
    if op == INPUT:
        return x
    if op == LINEAR:
        inner = _eval(node.args[0], x, linears)  # the argument first: its L is the first linear
        return next(linears)(inner)
    if op in ACTIVATIONS:
        return ACTIVATIONS[op](_eval(node.args[0], x, linears))
    a = _eval(node.args[0], x, linears)
    b = _eval(node.args[1], x, linears)
    w = min(a.shape[-1], b.shape[-1])
    if a.shape[-1] != w:
        a = a[..., :w]
    if b.shape[-1] != w:
        b = b[..., :w]
    if op == "add":
        return a + b
    if op == "mul":
        return a * b
    return torch.maximum(a, b)
