"""EfficientBERT's FFN expressions as a search space (the EfficientBERT paper): validity, sampling, mutation,
functional deduplication and a fixed-length encoding for a learned fitness model.

The language itself (parse, print, evaluate) lives in ``bertsmith.modeling.expr``; this module adds
what a search needs on top of it. ``validate`` applies the paper's ``check_individual`` rules,
``random_expression`` and ``mutate`` only return expressions that pass them, and ``functional_key``
tells apart expressions that compute different functions, so a search never trains the same FFN
twice under two spellings.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from ..modeling.expr import ACTIVATIONS, BINARY, INPUT, LINEAR, ExprError, Node, check, evaluate, format_expr, parse

SEED = "L(gelu(L(x)))"  # the dense FFN
MIN_HEIGHT, MAX_HEIGHT = 3, 7
OPS: tuple[str, ...] = (INPUT, LINEAR, *BINARY, *ACTIVATIONS)
FEATURES: tuple[str, ...] = (*(f"count_{op}" for op in OPS), "height", "depth_first_L", "depth_second_L")

_SMALL_DEPTH = 3  # fresh subtrees in mutations are 0 to 3 deep, as DEAP's mutUniform in the paper
_LEAF_PROBABILITY = 0.4  # chance that a growing L-free subtree stops at x before its depth limit
_KEY_HIDDEN, _KEY_INNER, _KEY_ROWS, _KEY_SEED = 12, 6, 8, 0
_key_tensors: tuple[torch.Tensor, nn.Linear, nn.Linear] | None = None

Path = tuple[int, ...]  # arg indices from the root to a node


def height(node: Node) -> int:
    """Edges on the longest root-to-leaf path: ``x`` is 0, ``L(gelu(L(x)))`` is 3. This is DEAP's
    height of the paper's trees when the weight terminals of its ``linear(x, wb)`` are ignored."""
    return 1 + max(height(a) for a in node.args) if node.args else 0


def validate(node: Node) -> None:
    """Raise ExprError (quoting the expression, naming the rule) unless ``node`` obeys the paper's
    rules: buildable (``expr.check``), height in [MIN_HEIGHT, MAX_HEIGHT], no activation directly on
    an activation, no L directly on an L, and no binary operator on two identical operands."""
    check(node)
    text = format_expr(node)
    h = height(node)
    if not MIN_HEIGHT <= h <= MAX_HEIGHT:
        raise ExprError(f"FFN expression {text!r} has height {h}, outside [{MIN_HEIGHT}, {MAX_HEIGHT}]")
    for _, n in _nodes(node):
        if n.op in ACTIVATIONS and n.args[0].op in ACTIVATIONS:
            raise ExprError(f"FFN expression {text!r} nests activations: {format_expr(n)}")
        if n.op == LINEAR and n.args[0].op == LINEAR:
            raise ExprError(f"FFN expression {text!r} nests linears: {format_expr(n)}")
        if n.op in BINARY and n.args[0] == n.args[1]:
            raise ExprError(f"FFN expression {text!r} gives {n.op} two identical operands: {format_expr(n)}")


def check_text(text: str) -> Node:
    """Parse and validate ``text``; either kind of error names the expression."""
    node = parse(text)
    validate(node)
    return node


def random_expression(rng: np.random.Generator, tries: int = 1000) -> Node:
    """A random valid expression: grow a tree with two nested linears up to a random height in
    [MIN_HEIGHT, MAX_HEIGHT], retrying until it passes ``validate``."""
    for _ in range(tries):
        node = _grow(rng, int(rng.integers(MIN_HEIGHT, MAX_HEIGHT + 1)), linears=2)
        if _is_valid(node):
            return node
    raise ExprError(f"no valid FFN expression found in {tries} tries")


def mutate(node: Node, rng: np.random.Generator, tries: int = 400) -> Node:
    """One random mutation of ``node`` (subtree replacement, operator replacement, insertion or
    shrink), retried until the result is valid and computes a different function than ``node``."""
    key = functional_key(node)
    operators = (_replace_subtree, _replace_operator, _insert, _shrink)
    for _ in range(tries):
        child = operators[rng.integers(len(operators))](node, rng)
        if child is not None and _is_valid(child) and functional_key(child) != key:
            return child
    raise ExprError(
        f"no valid, functionally different mutation of FFN expression {format_expr(node)!r} found in {tries} tries"
    )


def functional_key(node: Node) -> str:
    """A hash of what the expression computes on fixed random float64 inputs (rounded to 6
    decimals): expressions computing the same function, such as ``add(x, tanh(x))`` and
    ``add(tanh(x), x)`` inside the linears, share a key; different functions get different keys."""
    check(node)
    x, lin1, lin2 = _fixed_tensors()
    with torch.no_grad():
        out = evaluate(node, x, (lin1, lin2)).round(decimals=6) + 0.0  # + 0.0 turns -0.0 into 0.0
    return hashlib.sha256(out.numpy().tobytes()).hexdigest()


def features(node: Node) -> list[float]:
    """A fixed-length encoding (named by FEATURES) for a learned fitness model: how often each op in
    OPS occurs, the height, and the depths of the first (inner) and second linear from the root."""
    check(node)
    counts = dict.fromkeys(OPS, 0)
    linear_depths = []
    for path, n in _nodes(node):
        counts[n.op] += 1
        if n.op == LINEAR:
            linear_depths.append(len(path))
    second, first = sorted(linear_depths)  # the second L is applied on top of the first
    return [float(counts[op]) for op in OPS] + [float(height(node)), float(first), float(second)]


def _is_valid(node: Node) -> bool:
    try:
        validate(node)
    except ExprError:
        return False
    return True


def _grow(rng: np.random.Generator, depth: int, linears: int) -> Node:
    """A random tree at most ``depth`` deep whose leaves are all ``x`` and which holds ``linears``
    (0, 1 or 2) linears, each applied on top of the previous one."""
    if linears == 0 and (depth == 0 or rng.random() < _LEAF_PROBABILITY):
        return Node(INPUT)
    ops = [*ACTIVATIONS, *BINARY] + ([LINEAR] if linears else [])
    op = LINEAR if depth == linears else ops[rng.integers(len(ops))]  # no room left but for the linears
    if op == LINEAR:
        return Node(LINEAR, (_grow(rng, depth - 1, linears - 1),))
    if op in ACTIVATIONS:
        return Node(op, (_grow(rng, depth - 1, linears),))
    side = rng.integers(2)  # the operand that holds the linears, if any
    return Node(op, tuple(_grow(rng, depth - 1, linears if i == side else 0) for i in range(2)))


def _nodes(node: Node, path: Path = ()) -> list[tuple[Path, Node]]:
    """Every node with its path, root first."""
    out = [(path, node)]
    for i, a in enumerate(node.args):
        out += _nodes(a, (*path, i))
    return out


def _replace(node: Node, path: Path, new: Node) -> Node:
    if not path:
        return new
    args = list(node.args)
    args[path[0]] = _replace(args[path[0]], path[1:], new)
    return Node(node.op, tuple(args))


def _count_linears(node: Node) -> int:
    return sum(n.op == LINEAR for _, n in _nodes(node))


def _operator_nodes(node: Node) -> list[tuple[Path, Node]]:
    """The activations and binary operators of ``node``, with their paths."""
    return [(p, n) for p, n in _nodes(node) if n.op in ACTIVATIONS or n.op in BINARY]


def _pick(rng: np.random.Generator, items: list):
    return items[rng.integers(len(items))] if items else None


def _replace_subtree(node: Node, rng: np.random.Generator) -> Node:
    """DEAP's mutUniform: a random subtree becomes a freshly grown one, 0 to 3 deep, holding as many
    linears as the one it replaces so that the expression keeps its two."""
    path, old = _pick(rng, _nodes(node))
    linears = _count_linears(old)
    depth = max(int(rng.integers(_SMALL_DEPTH + 1)), linears)
    return _replace(node, path, _grow(rng, depth, linears))


def _replace_operator(node: Node, rng: np.random.Generator) -> Node | None:
    """DEAP's mutNodeReplacement: an activation becomes another activation, a binary operator
    another binary operator."""
    picked = _pick(rng, _operator_nodes(node))
    if picked is None:
        return None
    path, old = picked
    group = BINARY if old.op in BINARY else tuple(ACTIVATIONS)
    return _replace(node, path, Node(_pick(rng, [op for op in group if op != old.op]), old.args))


def _insert(node: Node, rng: np.random.Generator) -> Node:
    """DEAP's mutInsert: a new activation, or a binary operator whose other operand is a small
    linear-free subtree, goes above a random node."""
    path, old = _pick(rng, _nodes(node))
    op = _pick(rng, [*ACTIVATIONS, *BINARY])
    if op in ACTIVATIONS:
        return _replace(node, path, Node(op, (old,)))
    other = _grow(rng, int(rng.integers(_SMALL_DEPTH + 1)), linears=0)
    return _replace(node, path, Node(op, (old, other) if rng.random() < 0.5 else (other, old)))


def _shrink(node: Node, rng: np.random.Generator) -> Node | None:
    """DEAP's mutShrink: an activation or binary operator is replaced by one of its operands."""
    picked = _pick(rng, _operator_nodes(node))
    if picked is None:
        return None
    path, old = picked
    return _replace(node, path, _pick(rng, list(old.args)))


def _fixed_tensors() -> tuple[torch.Tensor, nn.Linear, nn.Linear]:
    """The inputs of ``functional_key``, made once from a seeded generator (the global RNG is
    untouched): x [8, 12], a first linear 12->6 and a second 6->12, all float64."""
    global _key_tensors
    if _key_tensors is None:
        g = torch.Generator().manual_seed(_KEY_SEED)
        x = torch.randn(_KEY_ROWS, _KEY_HIDDEN, generator=g, dtype=torch.float64)
        linears = []
        for fan_in, fan_out in ((_KEY_HIDDEN, _KEY_INNER), (_KEY_INNER, _KEY_HIDDEN)):
            lin = nn.utils.skip_init(nn.Linear, fan_in, fan_out, dtype=torch.float64)
            nn.init.normal_(lin.weight, std=fan_in**-0.5, generator=g)
            nn.init.normal_(lin.bias, generator=g)
            linears.append(lin)
        _key_tensors = (x, *linears)
    return _key_tensors
