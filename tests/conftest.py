"""Shared fixtures: tiny specs covering every attention kind × FFN kind × uniform/per-layer layout."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, settings

from bertsmith.arch import ArchSpec
from bertsmith.kinds import ATTENTION, FFN

pytest_plugins = ["tests.tasks"]  # task fixtures: tiny teacher, tiny task, MiniLM tokenizer

# Property-based tests of every parser a user feeds: a few hundred examples each by default, the same
# ones on every run (derandomized: the suite and CI stay reproducible), and many more, new each run, with
# `pytest --hypothesis-profile=long`. No deadline: the 2-core CI machine has CPU steal.
settings.register_profile(
    "default", max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")

HIDDEN = 48


def tiny_layer(attention: str, ffn: str, i: int = 0) -> dict:
    """One small layer of the given kinds (their own fields from the kind's ``examples``); ``i`` varies the
    shapes for per-layer specs."""
    att = {"kind": attention, "heads": 2 + i % 2, "qk_dim": 8 + 4 * i, "v_dim": 12 - 2 * i}
    f = {"kind": ffn, "size": 96 - 24 * i, "activation": ("gelu", "relu")[i % 2]}
    for part, kind in ((att, ATTENTION[attention]), (f, FFN[ffn])):
        part |= kind.examples[i % len(kind.examples)]
    return {"attention": att, "ffn": f}


def tiny_spec(attention: str, ffn: str, per_layer: bool, **fields) -> ArchSpec:
    layers = [tiny_layer(attention, ffn, i if per_layer else 0) for i in range(2)]
    emb = {"vocab_size": 97, "max_positions": 40, "type_vocab_size": 2}
    return ArchSpec.build(hidden=HIDDEN, layers=layers, embeddings=emb | fields.pop("embeddings", {}), **fields)


KIND_GRID = [
    pytest.param(a, f, per_layer, id=f"{a}-{f}-{'per_layer' if per_layer else 'uniform'}")
    for a, f, per_layer in itertools.product(ATTENTION, FFN, (False, True))
]
