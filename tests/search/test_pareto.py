"""The Pareto front against a brute-force reference, and the result files."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from optuna.trial import TrialState, create_trial

from bertsmith.arch import ArchSpec
from bertsmith.search.pareto import Point, pareto_front, write_pareto

SPEC = ArchSpec.uniform(layers=1, hidden=16, heads=2, qk_dim=8, ffn=32, embeddings={"vocab_size": 97})


def point(number: int, values, feasible: bool = True) -> Point:
    return Point(number, tuple(values), feasible, SPEC.to_dict(), SPEC.summary(), {}, {})


def brute_force_front(points: list[Point]) -> set[int]:
    """Every feasible point that no other feasible point beats or equals everywhere and beats somewhere."""
    feasible = [p for p in points if p.feasible]

    def beats(a, b):
        no_worse = a[0] >= b[0] and all(x <= y for x, y in zip(a[1:], b[1:]))
        better = a[0] > b[0] or any(x < y for x, y in zip(a[1:], b[1:]))
        return no_worse and better

    return {p.number for p in feasible if not any(beats(q.values, p.values) for q in feasible)}


@pytest.mark.parametrize("costs", [1, 2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_front_equals_the_brute_force_front(costs, seed):
    rng = np.random.default_rng(seed)
    n = 200
    values = rng.integers(0, 12, size=(n, 1 + costs)).astype(float)  # few distinct values: many ties
    points = [point(i, v, feasible=bool(rng.random() < 0.8)) for i, v in enumerate(values)]
    front = pareto_front(points)
    assert {p.number for p in front} == brute_force_front(points)
    assert len(front) == len({p.number for p in front})
    assert [p.values[1:] for p in front] == sorted(p.values[1:] for p in front)  # cheapest first


def test_identical_points_are_all_kept_and_infeasible_ones_never():
    points = [
        point(0, (0.9, 10)),
        point(1, (0.9, 10)),
        point(2, (0.8, 10)),
        point(3, (0.95, 5), feasible=False),
        point(4, (-math.inf, 1), feasible=False),
    ]
    assert [p.number for p in pareto_front(points)] == [0, 1]


def trial(number: int, values, *, feasible: bool = True, state=TrialState.COMPLETE, **attrs):
    spec = SPEC.replace(hidden=16 + 8 * number) if feasible else SPEC.replace(hidden=256)
    user_attrs = {
        "spec": spec.to_dict(),
        "summary": spec.summary(),
        "feasible": feasible,
        "violations": [],
        "costs": {"params": values[1], "flops": 2 * values[1]},
        "metrics": {"score": values[0], "other": 1},
        **attrs,
    }
    t = create_trial(state=state, values=values if state == TrialState.COMPLETE else None, user_attrs=user_attrs)
    t.number = number
    return t


def test_result_files(tmp_path):
    trials = [
        trial(0, [0.5, 100.0]),
        trial(1, [0.7, 200.0]),
        trial(2, [0.6, 300.0]),
        trial(3, [-math.inf, 50.0], feasible=False, violations=["params 50 > 10"]),
        trial(4, [0.7, 200.0], duplicate_of=1),
        trial(5, [0.0, 1.0], state=TrialState.FAIL, error="FloatingPointError"),
    ]
    front = write_pareto(tmp_path, trials, "score")
    assert [p.number for p in front] == [0, 1]

    data = json.loads((tmp_path / "pareto.json").read_text())
    assert [(d["trial"], d["metric"], d["value"]) for d in data] == [(0, "score", 0.5), (1, "score", 0.7)]
    assert data[1]["metrics"] == {"score": 0.7, "other": 1} and data[1]["costs"] == {"params": 200.0, "flops": 400.0}
    assert ArchSpec.from_dict(data[1]["spec"]) == front[1].arch() and data[1]["summary"] == front[1].arch().summary()

    rows = list(csv.DictReader((tmp_path / "pareto.csv").read_text().splitlines()))
    assert [r["trial"] for r in rows] == ["0", "1"] and rows[0]["score"] == "0.5" and rows[0]["params"] == "100.0"
    assert ArchSpec.from_json(rows[1]["spec"]) == front[1].arch() and rows[1]["summary"].startswith("L1 h24")

    rows = list(csv.DictReader((tmp_path / "trials.csv").read_text().splitlines()))
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    assert rows[3]["score"] == "" and rows[3]["feasible"] == "False" and rows[3]["violations"] == "params 50 > 10"
    assert rows[4]["duplicate_of"] == "1" and rows[5]["state"] == "FAIL" and rows[5]["error"] == "FloatingPointError"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files
