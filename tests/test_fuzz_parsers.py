"""Property-based fuzzing of the user-facing parsers: ArchSpec (YAML and JSON text, dicts), FFN
expressions and ``--budget`` strings. Whatever the input, the parser returns a valid object or raises
the project's own typed error with a one-line message (SpecError, ConfigError; ExprError for the
expression module, which is standalone: it is copied next to exported models); never another
exception, never for long.
Inputs are both near-valid (the real keys with wrong or edge values) and raw text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from bertsmith.arch import ArchSpec
from bertsmith.errors import ConfigError, SpecError
from bertsmith.modeling.expr import ACTIVATIONS, BINARY, MAX_NODES, ExprError, Node, check, format_expr, parse
from bertsmith.search.budget import Budget

from .conftest import tiny_layer

SECONDS = 5.0  # the most one parse may take (generous: the test machine has 2 shared cores)

# values that break naive parsers: booleans, huge and negative ints, odd floats, strings, None, nesting
EDGE = st.one_of(
    st.booleans(), st.none(), st.integers(-3, 300), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["5M", "1e400", "9" * 400, "", "true", "0x10", "L(x)", "-1", "1.5"]),
    st.lists(st.integers(-3, 300), max_size=4), st.lists(st.lists(st.none(), max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(["min", "max", "step", "kind", "x"]), st.integers(-3, 300), max_size=3),
)


def outcome(parse_: Callable[[], Any], errors: type[Exception] | tuple[type[Exception], ...]) -> Any:
    """Run ``parse_``: its result, or None after checking that it raised one of ``errors`` with a
    non-empty one-line message. Either way within SECONDS."""
    start = time.perf_counter()
    try:
        return parse_()
    except errors as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 1000, message
        return None
    finally:
        assert time.perf_counter() - start < SECONDS


def _template() -> dict:
    layers = [tiny_layer(att, ffn, i) for i, (att, ffn) in enumerate((("mhsa", "dense"), ("mixed", "searched")))]
    return {"hidden": 48, "layers": layers, "embeddings": {"vocab_size": 97, "max_positions": 40},
            "hidden_dropout": 0.1, "pooler": True}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested dict/list, leaves and containers."""
    out = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out += _paths(child, (*prefix, key))
    return out


@st.composite
def near_valid(draw: st.DrawFn, template: dict, extra_keys: list[str]) -> dict:
    """``template`` with one to three edits: a value replaced by an edge value, a key dropped or
    misspelled, or an unknown key added."""
    data = json.loads(json.dumps(template))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data) or [("x",)]))
        *parents, last = path
        node = data
        for p in parents:
            node = node[p] if isinstance(node, (dict, list)) and (p in node if isinstance(node, dict)
                                                                   else p < len(node)) else None
        if not isinstance(node, (dict, list)) or (isinstance(node, list) and last >= len(node)) or (
                isinstance(node, dict) and last not in node):
            continue
        edit = draw(st.sampled_from(["value", "value", "value", "drop", "misspell", "add"]))
        if edit == "value":
            node[last] = draw(EDGE)
        elif edit == "drop" and isinstance(node, dict):
            del node[last]
        elif edit == "misspell" and isinstance(node, dict):
            node[f"{last}s" if not str(last).endswith("s") else str(last)[:-1]] = node.pop(last)
        elif edit == "add" and isinstance(node, dict):
            node[draw(st.sampled_from(extra_keys))] = draw(EDGE)
    return data


ARCH_KEYS = ["hidden", "layers", "layer", "heads", "kind", "size", "expression", "stack", "colour"]


@given(near_valid(_template(), ARCH_KEYS))
def test_archspec_dicts(data):
    spec = outcome(lambda: ArchSpec.from_dict(data, source="spec.yaml"), SpecError)
    if spec is not None:
        assert ArchSpec.from_json(spec.to_json()) == spec


@given(near_valid(_template(), ARCH_KEYS), st.sampled_from(["yaml", "json"]))
def test_archspec_text_of_near_valid_dicts(data, form):
    text = yaml.safe_dump(data) if form == "yaml" else json.dumps(data)
    outcome(lambda: ArchSpec.from_yaml(text) if form == "yaml" else ArchSpec.from_json(text), SpecError)


RAW = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="{}[]:,-\"' \n\t&*!|>#%@`0123456789.eE+-xtruefalsnhidelay", max_size=200),
    st.builds(lambda open_, n: open_ * n, st.sampled_from(["[", "{a: ", "- ", '{"a": ', "!!map {"]),
              st.integers(0, 20_000)),
    st.builds(lambda digits: f"hidden: {digits}\nlayers: []\n", st.text(alphabet="0123456789_.", max_size=6000)),
    st.sampled_from(["a: 2001-13-45", "a: !!binary xyz", "a: !!python/name:os.system", "a: !!float abc",
                     "a: &a [*a]", "a: !!set {x}", "? [a]\n: b", "a: " + "9" * 5000, "[" + "9" * 5000 + "]"]),
)


@given(RAW, st.sampled_from(["yaml", "json"]))
def test_archspec_raw_text(text, form):
    outcome(lambda: ArchSpec.from_yaml(text) if form == "yaml" else ArchSpec.from_json(text), SpecError)


def test_archspec_files(tmp_path):
    """The file reader: not UTF-8, a directory, an empty file."""
    for name, content in (("latin.yaml", b"hidden: caf\xe9\n"), ("empty.yaml", b""), ("nul.json", b"\x00")):
        (tmp_path / name).write_bytes(content)
        outcome(lambda path=tmp_path / name: ArchSpec.load(path), SpecError)
    outcome(lambda: ArchSpec.load(tmp_path), SpecError)


# ---- expressions ------------------------------------------------------------------------------------
OPS = ["x", "L", *BINARY, *ACTIVATIONS]

def _format_or_x(node: Node) -> str:
    """The text of a tree, ``x`` for one beyond the limits."""
    try:
        return format_expr(node)
    except ExprError:
        return "x"


trees = st.recursive(
    st.just(Node("x")),
    lambda sub: st.one_of(
        st.builds(lambda op, a: Node(op, (a,)), st.sampled_from(["L", *ACTIVATIONS]), sub),
        st.builds(lambda op, a, b: Node(op, (a, b)), st.sampled_from(BINARY), sub, sub),
    ),
    max_leaves=MAX_NODES,
)
chains = st.builds(lambda op, n, inner: f"{op}(" * n + inner + ")" * n,
                   st.sampled_from(["L", "relu", "add(x, ", "mul(L(x), "]), st.integers(0, 6000),
                   st.sampled_from(["x", "L(x)", "", "x, x"]))
expression_text = st.one_of(
    st.text(max_size=100),
    st.lists(st.sampled_from([*OPS, "(", ")", ",", " ", "q", "1"]), max_size=120).map("".join),
    st.lists(st.sampled_from(OPS), max_size=60).map(lambda ops: "(".join(ops) + ")" * (len(ops) - 1)),
    chains,
    trees.map(lambda node: _format_or_x(node)),
)


@given(expression_text)
def test_expressions(text):
    node = outcome(lambda: parse(text), ExprError)
    if node is not None:
        assert parse(format_expr(node)) == node
        outcome(lambda: check(node), ExprError)


@given(trees)
def test_printing_trees(node):
    text = outcome(lambda: format_expr(node), ExprError)
    if text is not None:
        assert parse(text) == node


# ---- budgets ----------------------------------------------------------------------------------------
BUDGET_NAMES = ["params", "total_params", "flops", "latency", "device", "seq_len", "batch", "watts", ""]
budget_value = st.one_of(
    st.sampled_from(["5M", "2.5k", "1e3", "9" * 400, "20ms", "0.5s", "inf", "nan", "-1", "0", "cuda", "cpu", "true",
                     "", "1.5", "  7 ", "10%", "3apples"]),
    st.integers(-5, 10**30).map(str), st.floats().map(str), st.text(max_size=10),
)
budget_text = st.one_of(
    st.lists(st.tuples(st.sampled_from(BUDGET_NAMES), st.sampled_from(["=", "=", ":", ""]), budget_value),
             max_size=4).map(lambda parts: ",".join(f"{n}{sep}{v}" for n, sep, v in parts)),
    st.text(max_size=80),
)


@given(budget_text)
def test_budget_strings(text):
    budget = outcome(lambda: Budget.parse(text), ConfigError)
    if budget is not None:
        assert all(v is None or v > 0 for v in (budget.params, budget.total_params, budget.flops, budget.latency))
