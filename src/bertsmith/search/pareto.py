"""The Pareto front of a search (the best metric for every cost) and the files that report it.

A point's values are its metric (maximised) and its objective costs (minimised), in the study's
order. A point is on the front when it is feasible and no other feasible point is at least as good in
every value and better in one. Points with identical values do not dominate each other, so all of
them are kept: different architectures can tie (same parameters, same accuracy), and the front lists
each. A repeated architecture is one point, because a search records a repeat as a duplicate trial
and only original trials become points.

``write_pareto`` writes, atomically, ``pareto.json`` and ``pareto.csv`` (the front) and ``trials.csv``
(every trial) in the run directory.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from optuna.trial import FrozenTrial, TrialState

from ..arch import ArchSpec
from ..files import atomic_write_text
from .costs import COSTS


@dataclass(frozen=True)
class Point:
    """One architecture a search scored: ``values`` are (metric, *objective costs); ``spec`` is the
    ArchSpec as a dict (``arch()`` builds it) and ``summary`` its one line."""

    number: int
    values: tuple[float, ...]
    feasible: bool
    spec: dict[str, Any]
    summary: str
    metrics: dict[str, float]
    costs: dict[str, float]

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> "Point":
        a = trial.user_attrs
        return cls(trial.number, tuple(trial.values), a["feasible"], a["spec"], a["summary"], a["metrics"], a["costs"])

    def arch(self) -> ArchSpec:
        return ArchSpec.from_dict(self.spec)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is at least as good as ``b`` in every value and better in one (the first value is
    maximised, the others minimised)."""
    at_least = a[0] >= b[0] and all(x <= y for x, y in zip(a[1:], b[1:]))
    return at_least and tuple(a) != tuple(b)


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The feasible points that no other feasible point dominates, cheapest first.

    Sorted best-first (highest metric, then lowest costs), a point can only be dominated by points
    before it, and a dominated point's dominator is itself dominated by a front point, so each point
    is compared with the front found so far."""
    front: list[Point] = []
    for p in sorted((p for p in points if p.feasible), key=lambda p: (-p.values[0], *p.values[1:])):
        if not any(dominates(q.values, p.values) for q in front):
            front.append(p)
    return sorted(front, key=lambda p: (*p.values[1:], -p.values[0]))


def points(trials: Sequence[FrozenTrial]) -> list[Point]:
    """The complete trials that are not duplicates of earlier ones, as points."""
    return [
        Point.from_trial(t)
        for t in trials
        if t.state == TrialState.COMPLETE and t.user_attrs.get("duplicate_of") is None
    ]


def write_pareto(run_dir: Path, trials: Sequence[FrozenTrial], metric: str) -> list[Point]:
    """Write ``pareto.json``, ``pareto.csv`` and ``trials.csv`` into ``run_dir``; returns the front.
    ``metric``: the name of the maximised metric (the first value of every trial)."""
    front = pareto_front(points(trials))
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "pareto.json", json.dumps([_point_json(p, metric) for p in front], indent=2) + "\n")
    atomic_write_text(
        run_dir / "pareto.csv",
        _csv(
            ["trial", metric, *COSTS, "summary", "spec"],
            [
                [p.number, p.values[0], *(p.costs.get(c, "") for c in COSTS), p.summary, json.dumps(p.spec)]
                for p in front
            ],
        ),
    )
    atomic_write_text(
        run_dir / "trials.csv",
        _csv(
            ["trial", "state", "feasible", metric, *COSTS, "violations", "duplicate_of", "summary", "error"],
            [_trial_row(t) for t in trials],
        ),
    )
    return front


def _point_json(p: Point, metric: str) -> dict[str, Any]:
    return {
        "trial": p.number,
        "metric": metric,
        "value": p.values[0],
        "metrics": p.metrics,
        "costs": p.costs,
        "summary": p.summary,
        "spec": p.spec,
    }


def _trial_row(t: FrozenTrial) -> list[Any]:
    """A trial's row; the metric is left empty when the architecture was not evaluated (an over-budget
    trial's -inf is the study's encoding of "not evaluated", not a score)."""
    attrs = t.user_attrs
    value = t.values[0] if t.values and math.isfinite(t.values[0]) else ""
    return [
        t.number,
        t.state.name,
        attrs.get("feasible", ""),
        value,
        *(attrs.get("costs", {}).get(c, "") for c in COSTS),
        "; ".join(attrs.get("violations", [])),
        attrs.get("duplicate_of", ""),
        attrs.get("summary", ""),
        attrs.get("error", ""),
    ]


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
