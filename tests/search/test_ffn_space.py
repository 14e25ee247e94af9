"""The FFN expression search space: validity rules, sampling, mutation, functional keys, features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertsmith.arch import ArchSpec
from bertsmith.modeling.expr import ExprError, Node, format_expr, parse
from bertsmith.search.ffn_space import (
    FEATURES,
    MAX_HEIGHT,
    MIN_HEIGHT,
    OPS,
    SEED,
    check_text,
    features,
    functional_key,
    height,
    mutate,
    random_expression,
    validate,
)

PUBLISHED = [  # EfficientBERT's six searched FFNs (the EfficientBERT paper)
    "tanh(L(gelu(L(x))))",
    "elu(L(gelu(L(x))))",
    "sigmoid(L(relu(L(x))))",
    "L(gelu(L(max(x, tanh(x)))))",
    "L(relu(mul(L(x), x)))",
    "leaky_relu(L(gelu(L(x))))",
]


def mutants(seeds: range) -> list[tuple[Node, Node]]:
    """(parent, child) pairs: a random parent and one mutation of it, per seed."""
    pairs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        parent = random_expression(rng)
        pairs.append((parent, mutate(parent, rng)))
    return pairs


@pytest.mark.parametrize(
    "text,expected",
    [
        ("x", 0),
        ("L(x)", 1),
        ("L(gelu(L(x)))", 3),
        ("L(relu(mul(L(x), x)))", 4),
        ("L(gelu(L(max(x, tanh(x)))))", 5),
    ],
)
def test_height_counts_edges_on_longest_path(text, expected):
    assert height(parse(text)) == expected


@pytest.mark.parametrize("text", [*PUBLISHED, SEED])
def test_published_expressions_and_seed_are_valid(text):
    validate(parse(text))
    assert check_text(text) == parse(text)


@pytest.mark.parametrize(
    "tree,rule",
    [
        (parse("tanh(L(gelu(tanh(L(x)))))"), "nests activations"),
        (parse("L(L(relu(x)))"), "nests linears"),
        (parse("L(gelu(L(add(x, x))))"), "identical operands"),
        (parse("L(gelu(L(max(tanh(x), tanh(x)))))"), "identical operands"),
        (parse("L(x)"), "exactly two linear maps"),
        (parse("L(relu(L(L(x))))"), "exactly two linear maps"),
        # hand-built: parse knows no leaf but x, so a weight terminal w stands in for it
        (Node("L", (Node("gelu", (Node("L", (Node("w"),)),)),)), "never uses the input x"),
        (parse("add(L(x), L(x))"), "second L must be applied on top of the first"),
        (parse("relu(add(L(x), L(x)))"), "second L must be applied on top of the first"),
        (parse("L(gelu(add(x, tanh(add(x, sigmoid(add(x, relu(L(x)))))))))"), "has height 9"),
    ],
)
def test_validate_names_expression_and_rule(tree, rule):
    with pytest.raises(ExprError) as info:
        validate(tree)
    message = str(info.value)
    assert repr(format_expr(tree)) in message
    assert rule in message


def test_height_bounds_are_inclusive():
    shallow = parse("L(gelu(L(x)))")
    assert height(shallow) == MIN_HEIGHT
    deep = parse("L(gelu(add(x, tanh(add(x, relu(L(x)))))))")
    assert height(deep) == MAX_HEIGHT
    validate(deep)
    too_deep = parse("L(gelu(add(x, tanh(add(x, relu(mul(x, L(x))))))))")
    assert height(too_deep) == MAX_HEIGHT + 1
    with pytest.raises(ExprError, match=r"has height 8, outside \[3, 7\]"):
        validate(too_deep)


def test_too_shallow_is_rejected():
    # Two nested linears make height 2 at least, so L(L(x)) is the only buildable tree below MIN_HEIGHT.
    with pytest.raises(ExprError, match=r"'L\(L\(x\)\)' has height 2, outside \[3, 7\]"):
        validate(parse("L(L(x))"))


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("L(gelu(L(x))", "cannot parse"),
        ("L(foo(L(x)))", "unknown operator"),
        ("L(gelu(gelu(L(x))))", "nests activations"),
    ],
)
def test_check_text_names_expression(text, fragment):
    with pytest.raises(ExprError) as info:
        check_text(text)
    assert repr(text) in str(info.value)
    assert fragment in str(info.value)


def test_random_expressions_are_valid_and_varied():
    trees = [random_expression(np.random.default_rng(seed)) for seed in range(200)]
    for tree in trees:
        validate(tree)
        assert parse(format_expr(tree)) == tree
    assert len({functional_key(t) for t in trees}) >= 100
    assert {height(t) for t in trees} == set(range(MIN_HEIGHT, MAX_HEIGHT + 1))


def test_random_expression_is_reproducible():
    assert random_expression(np.random.default_rng(7)) == random_expression(np.random.default_rng(7))


def test_random_expression_gives_up_after_tries():
    with pytest.raises(ExprError, match="in 0 tries"):
        random_expression(np.random.default_rng(0), tries=0)


def test_mutations_are_valid_and_functionally_new():
    for parent, child in mutants(range(150)):
        validate(child)
        assert functional_key(child) != functional_key(parent)
        assert parse(format_expr(child)) == child


def test_mutation_chain_from_seed_explores():
    rng = np.random.default_rng(0)
    tree, seen = parse(SEED), set()
    for _ in range(100):
        tree = mutate(tree, rng)
        seen.add(functional_key(tree))
    assert len(seen) >= 50


def test_mutate_gives_up_naming_expression():
    with pytest.raises(ExprError) as info:
        mutate(parse(SEED), np.random.default_rng(0), tries=0)
    assert repr(SEED) in str(info.value)


def test_functional_key_sees_functions_not_spelling():
    assert functional_key(parse("L(gelu(L(add(x, tanh(x)))))")) == functional_key(parse("L(gelu(L(add(tanh(x), x))))"))
    assert functional_key(parse("L(gelu(L(max(x, relu(x)))))")) == functional_key(parse("L(gelu(L(max(relu(x), x))))"))
    assert functional_key(parse("L(gelu(L(x)))")) != functional_key(parse("L(relu(L(x)))"))
    keys = {functional_key(parse(t)) for t in PUBLISHED}
    assert len(keys) == len(PUBLISHED)


def test_functional_key_is_stable_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    key = functional_key(parse(SEED))
    assert torch.equal(torch.rand(3), expected)
    assert functional_key(parse(SEED)) == key and len(key) == 64


def test_features_encode_known_expression():
    tree = parse("L(relu(mul(L(x), x)))")
    f = features(tree)
    assert len(f) == len(FEATURES) and FEATURES[: len(OPS)] == tuple(f"count_{op}" for op in OPS)
    named = dict(zip(FEATURES, f))
    assert named["count_x"] == 2 and named["count_L"] == 2 and named["count_mul"] == 1
    assert named["count_relu"] == 1
    assert sum(named[f"count_{op}"] for op in OPS) == 6  # every node counted once
    assert named["height"] == 4
    assert named["depth_first_L"] == 3 and named["depth_second_L"] == 0


def test_features_have_fixed_length():
    for parent, child in mutants(range(20)):
        assert len(features(parent)) == len(features(child)) == len(FEATURES)


@pytest.mark.parametrize("seed", range(5))
def test_arch_spec_round_trips_expression(seed):
    text = format_expr(random_expression(np.random.default_rng(seed)))
    spec = ArchSpec.uniform(layers=1, hidden=32, heads=2, ffn=16, ffn_kind="searched", expression=text, stack=2)
    again = ArchSpec.from_dict(spec.to_dict())
    assert again == spec
    assert parse(again.layers[0].ffn.expression) == parse(text)
