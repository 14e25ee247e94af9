"""Property-based fuzzing of the user-facing parsers: ArchSpec (YAML and JSON text, dicts), FFN
expressions and ``--budget`` strings. Whatever the input, the parser returns a valid object or raises
the project's own typed error with a one-line message (SpecError, ConfigError; ExprError for the
expression module, which is standalone: it is copied next to exported models); never another
exception, never for long.
Inputs are both near-valid (the real keys with wrong or edge values) and raw text."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from bertsmith.arch import ArchSpec
from bertsmith.errors import ConfigError, SpecError
from bertsmith.modeling.expr import ACTIVATIONS, BINARY, MAX_NODES, ExprError, Node, check, format_expr, parse
from bertsmith.runconfig import load_config
from bertsmith.search.budget import Budget

from .conftest import tiny_layer
from .fuzz import RAW, near_valid, outcome


def _template() -> dict:
    layers = [tiny_layer(att, ffn, i) for i, (att, ffn) in enumerate((("mhsa", "dense"), ("mixed", "searched")))]
    return {
        "hidden": 48,
        "layers": layers,
        "embeddings": {"vocab_size": 97, "max_positions": 40},
        "hidden_dropout": 0.1,
        "pooler": True,
    }


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
chains = st.builds(
    lambda op, n, inner: f"{op}(" * n + inner + ")" * n,
    st.sampled_from(["L", "relu", "add(x, ", "mul(L(x), "]),
    st.integers(0, 6000),
    st.sampled_from(["x", "L(x)", "", "x, x"]),
)
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
    st.sampled_from(
        [
            "5M",
            "2.5k",
            "1e3",
            "9" * 400,
            "20ms",
            "0.5s",
            "inf",
            "nan",
            "-1",
            "0",
            "cuda",
            "cpu",
            "true",
            "",
            "1.5",
            "  7 ",
            "10%",
            "3apples",
        ]
    ),
    st.integers(-5, 10**30).map(str),
    st.floats().map(str),
    st.text(max_size=10),
)
budget_text = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(BUDGET_NAMES), st.sampled_from(["=", "=", ":", ""]), budget_value), max_size=4
    ).map(lambda parts: ",".join(f"{n}{sep}{v}" for n, sep, v in parts)),
    st.text(max_size=80),
)


@given(budget_text)
def test_budget_strings(text):
    budget = outcome(lambda: Budget.parse(text), ConfigError)
    if budget is not None:
        assert all(v is None or v > 0 for v in (budget.params, budget.total_params, budget.flops, budget.latency))


# ---- run configs ------------------------------------------------------------------------------------
RUN_CONFIG = {
    "task": "rotten-tomatoes",
    "max_length": 16,
    "seed": 0,
    "teacher": {"steps": 36, "lr": 3e-3, "batch_size": 16},
    "budget": {"params": "60%", "latency": None, "seq_len": 16, "device": "cpu"},
    "search": {"trials": 5, "supernet_steps": 4, "objectives": ["params", "latency"], "options": {"batch_size": 16}},
    "finalists": {"count": 2, "steps": 8, "baselines": ["uniform"]},
    "export": {"seq_len": 16},
}


@given(near_valid(RUN_CONFIG, ["trials", "budget", "colour", "steps", "search", "seq_len"]))
def test_run_configs(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        outcome(lambda: load_config(path), ConfigError)
