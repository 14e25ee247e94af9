"""Property-based fuzzing of search spaces (dicts and YAML files, budgets inside them) and Bort grids:
a valid space, whose size is counted and printed and whose samples are buildable, or a one-line
SpecError/ConfigError; never another exception, never for long."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bertsmith.arch import ArchSpec, validate_mapping
from bertsmith.errors import ConfigError, SpecError
from bertsmith.search.grid import Grid
from bertsmith.search.space import MAX_LAYERS, MAX_WIDTH, SearchSpace

from ..fuzz import EDGE, RAW, near_valid, outcome

TEMPLATE = {
    "depth": {"min": 1, "max": 3},
    "hidden": [32, 48],
    "embedding_size": [None, 16],
    "per_layer": True,
    "layer": {
        "attention": ["mhsa", "mixed"],
        "heads": [2, 4],
        "qk_dim": {"min": 8, "max": 16, "step": 8},
        "v_dim": [8],
        "conv_kernel": [3],
        "head_ratio": [2],
        "ffn_kind": ["dense", "grouped", "searched"],
        "ffn": [32, 64],
        "groups": [2],
        "expression": ["L(gelu(L(x)))", "L(relu(mul(L(x), x)))"],
        "activation": ["gelu", "relu"],
    },
    "embeddings": {"vocab_size": 97, "max_positions": 40},
    "dropout": 0.1,
    "budget": {"params": "50K", "latency": "20ms", "seq_len": 16, "batch": 1},
}
SPACE_KEYS = ["depth", "hidden", "layer", "layers", "min", "max", "step", "device", "width", "per_layer", "budget"]


def check_space(space: SearchSpace) -> None:
    """A valid space is counted (printably), and its samples and extremes are within its bounds."""
    size = space.size()
    assert size >= 1 and f"{size:,}"
    rng = np.random.default_rng(0)
    for spec in (space.sample(rng), space.sample(rng), space.extreme(largest=True)):
        assert isinstance(spec, ArchSpec) and 1 <= spec.num_layers <= MAX_LAYERS and spec.hidden <= MAX_WIDTH
        space.budget.violations(spec)


@given(near_valid(TEMPLATE, SPACE_KEYS))
def test_space_dicts(data):
    space = outcome(lambda: SearchSpace.from_dict(data, source="space.yaml"), SpecError)
    if space is not None:
        check_space(space)


# ranges and lists at the bounds: depth and sizes around their limits, big counts, big steps
bound = st.one_of(
    st.integers(1, 64),
    st.sampled_from([0, -1, True, MAX_LAYERS, MAX_LAYERS + 1, MAX_WIDTH, MAX_WIDTH + 1, 100_000, 2_000_000_000, 2**64]),
)
plausible = st.one_of(
    st.lists(st.integers(1, 64), min_size=1, max_size=3),
    st.builds(lambda a, b: {"min": min(a, b), "max": max(a, b)}, st.integers(1, 64), st.integers(1, 64)),
)
edgy = st.one_of(
    st.fixed_dictionaries({"min": bound, "max": bound}, optional={"step": bound}), st.lists(bound, max_size=4), EDGE
)
choices = st.integers(0, 3).flatmap(lambda k: edgy if k == 0 else plausible)  # a quarter at the edges


@given(depth=choices, hidden=choices, heads=choices, ffn=choices, per_layer=st.booleans())
def test_space_bounds(depth, hidden, heads, ffn, per_layer):
    data = {
        "depth": depth,
        "hidden": hidden,
        "per_layer": per_layer,
        "layer": {"heads": heads, "qk_dim": [8], "v_dim": [8], "ffn": ffn},
    }
    space = outcome(lambda: SearchSpace.from_dict(data, source="space.yaml"), SpecError)
    if space is not None:
        check_space(space)


@given(st.one_of(RAW, near_valid(TEMPLATE, SPACE_KEYS).map(yaml.safe_dump)))
def test_space_files(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space.yaml"
        path.write_text(text, encoding="utf-8")
        space = outcome(lambda: SearchSpace.load(path), SpecError)
    if space is not None:
        check_space(space)


@given(
    st.dictionaries(
        st.sampled_from(["params", "total_params", "flops", "latency", "device", "seq_len", "batch", "watts"]),
        EDGE,
        max_size=4,
    )
)
def test_budget_dicts(budget):
    space = outcome(lambda: SearchSpace.from_dict({**TEMPLATE, "budget": budget}), SpecError)
    if space is not None:
        assert all(v is None or v > 0 for v in (space.budget.params, space.budget.flops, space.budget.latency))


GRID = {"depth": [2, 4], "heads": [2, 4], "hidden": [32, 64], "ffn": [64], "head_dim": "ratio"}


@given(near_valid(GRID, ["depth", "heads", "head_dim", "size"]))
def test_grid_dicts(data):
    outcome(lambda: validate_mapping(Grid, data, source="grid.yaml", what="grid"), (SpecError, ConfigError))
