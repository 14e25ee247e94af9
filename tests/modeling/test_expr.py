"""The FFN expression language: parse/print round trip, structural rules, widths, evaluation."""

from __future__ import annotations

import pytest
import torch

from bertsmith.modeling.expr import (
    MAX_DEPTH,
    MAX_NODES,
    ExprError,
    Node,
    check,
    evaluate,
    format_expr,
    linear_shapes,
    parse,
)
from bertsmith.search.ffn_space import MAX_HEIGHT
from bertsmith.presets import EFFICIENTBERT_FFNS

EXPRESSIONS = [e for e, _, _ in EFFICIENTBERT_FFNS] + ["add(L(swish(L(x))), x)", "max(L(elu(L(x))), sigmoid(x))"]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_parse_print_round_trip(text):
    tree = parse(text)
    assert format_expr(tree) == text
    assert parse(format_expr(tree)) == tree
    check(tree)


def test_whitespace_is_free():
    assert parse(" tanh ( L( gelu(L(x)) ) ) ") == parse("tanh(L(gelu(L(x))))")


@pytest.mark.parametrize(
    "text,message",
    [
        ("L(gelu(L(x))", "expected ')'"),
        ("L(", "ends too early"),
        ("L(gelu(L(x))))", "unexpected ')' after the end"),
        ("L(softplus(L(x)))", "unknown operator 'softplus'"),
        ("L(add(L(x)))", "add takes 2 argument(s)"),
        ("L(gelu(L(x))) + x", "unexpected character"),
        ("gelu", "gelu needs '('"),
    ],
)
def test_unparsable_expressions(text, message):
    with pytest.raises(ExprError, match="cannot parse FFN expression") as info:
        parse(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "text,message",
    [
        ("L(gelu(x))", "exactly two linear maps L, found 1"),
        ("L(L(L(x)))", "exactly two linear maps L, found 3"),
        ("add(L(x), L(x))", "the second L must be applied on top of the first"),
    ],
)
def test_structural_rules(text, message):
    with pytest.raises(ExprError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(parse(text))


def test_linear_shapes_truncate_to_the_narrower_operand():
    assert linear_shapes(parse("L(gelu(L(x)))"), 540, 270) == ((540, 270), (270, 540))
    assert linear_shapes(parse("L(relu(mul(L(x), x)))"), 540, 270) == ((540, 270), (270, 540))
    assert linear_shapes(parse("L(relu(mul(L(x), x)))"), 64, 256) == ((64, 256), (64, 64))
    assert linear_shapes(parse("L(gelu(L(max(x, tanh(x)))))"), 540, 270) == ((540, 270), (270, 540))


def test_evaluate_matches_hand_written_functions():
    torch.manual_seed(0)
    x = torch.randn(4, 8)
    l1, l2 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 8)
    got = evaluate(parse("tanh(L(gelu(L(x))))"), x, (l1, l2))
    torch.testing.assert_close(got, torch.tanh(l2(torch.nn.functional.gelu(l1(x)))))
    got = evaluate(parse("L(relu(mul(L(x), x)))"), x, (l1, l2))
    torch.testing.assert_close(got, l2(torch.relu(l1(x) * x[:, :6])))


@pytest.mark.parametrize(
    "text,message",
    [
        ("L(" * 2000 + "x" + ")" * 2000, f"is {MAX_DEPTH + 1} levels deep, over the limit of {MAX_DEPTH}"),
        ("relu(" * 700 + "x" + ")" * 700, f"over the limit of {MAX_DEPTH}"),
        ("add(x, " * 5000 + "x" + ")" * 5000, f"over the limit of {MAX_DEPTH}"),
        ("add(" + ", ".join(["mul(relu(x), add(x, x))"] * 100) + ")", f"over the limit of {MAX_NODES}"),
        ("L(" + "q" * 100_000 + "(x))", "unknown operator"),
    ],
)
def test_huge_expressions_are_refused_in_one_short_line(text, message):
    with pytest.raises(ExprError, match=message.replace("(", r"\(")) as info:
        parse(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def _full_tree(height: int) -> Node:
    """A complete binary tree of ``height``: the most nodes an expression of that height can have."""
    return Node("x") if height == 0 else Node("add", (_full_tree(height - 1), _full_tree(height - 1)))


def test_the_largest_searchable_expressions_fit_the_limits():
    tree = _full_tree(MAX_HEIGHT)  # the FFN search's largest: 2^(7+1) - 1 = 255 nodes
    assert parse(format_expr(tree)) == tree
    chain = Node("x")
    for _ in range(MAX_DEPTH):
        chain = Node("relu", (chain,))
    assert parse(format_expr(chain)) == chain


def test_printing_a_deep_hand_built_tree_is_refused():
    tree = Node("x")
    for _ in range(5000):
        tree = Node("relu", (tree,))
    with pytest.raises(ExprError, match=f"over the limit of {MAX_DEPTH}"):
        format_expr(tree)
    with pytest.raises(ExprError, match=f"over the limit of {MAX_NODES}"):
        format_expr(_full_tree(8))
