"""Is a model any good? The level a constant predictor reaches on a split, and the run's quality
gate: the checks that stop ``bertsmith run`` from handing back a useless model without saying so.

A **constant predictor** answers the same for every input: one class for a classification task, one
value for a regression task. Its level is the best such answer's metric on the split's own labels
(accuracy: the majority rate; binary F1: the all-positive F1; Matthews correlation: 0; Pearson and
Spearman: 0, as the correlation of a constant is undefined). A model whose metric is within
``margin`` points of that level has learnt nothing that a constant would not tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .data import Task


def constant_levels(task: Task, labels: np.ndarray) -> dict[str, float]:
    """Every metric of ``task``: its best value over the constant predictions on ``labels`` (the task
    type's ``constant_level``)."""
    labels = np.asarray(labels)
    return {name: task.task_type.constant_level(task, name, labels) for name in task.metrics}


def at_constant_level(value: float, level: float, margin_points: float) -> bool:
    """Whether ``value`` is no more than ``margin_points`` (points of the metric × 100) above ``level``;
    an undefined (NaN) metric counts as constant."""
    return math.isnan(value) or 100 * (value - level) <= margin_points + 1e-9


@dataclass
class Verdict:
    """The quality gate's findings about the chosen model; ``passed`` when there are none."""

    reasons: list[str] = field(default_factory=list)
    baseline: str | None = None  # the comparison with the uniform baseline, in words

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reasons": self.reasons, "baseline": self.baseline}


def judge(
    chosen: dict, entries: list[dict], teacher: dict, constant: dict, metric: str, *, max_drop: float, margin: float
) -> Verdict:
    """The quality gate on the chosen model (dev decides; test is reported beside it):
    - at the level of a constant predictor on dev;
    - more than ``max_drop`` points behind the teacher on dev;
    - behind the uniform baseline on dev (possible only when the baseline is not eligible, e.g. over a
      latency budget) ; the comparison with the baseline is stated either way."""
    verdict = Verdict()
    dev = chosen["metrics"]["dev"][metric]
    level = constant.get("dev", {}).get(metric)
    if level is not None and at_constant_level(dev, level, margin):
        verdict.reasons.append(
            f"dev {metric} {100 * dev:.2f} is at the level of a constant predictor "
            f"({100 * level:.2f}, which answers the same for every input)"
        )
    drop = 100 * (teacher["metrics"]["dev"][metric] - dev)
    if drop > max_drop:
        verdict.reasons.append(
            f"dev {metric} is {drop:.2f} points behind the teacher's (more than quality.max_drop = {max_drop:g})"
        )
    uniform = next((e for e in entries if e.get("source") == "uniform"), None)
    search = [e for e in entries if e["kind"] == "finalist"]
    if uniform is not None:
        u = uniform["metrics"]["dev"][metric]
        if uniform["name"] == chosen["name"]:
            best = max(search, key=lambda e: e["metrics"]["dev"][metric], default=None)
            gap = (
                ""
                if best is None
                else f" by {100 * (u - best['metrics']['dev'][metric]):.2f} points on dev "
                f"({_test_gap(uniform, best, metric)})"
            )
            verdict.baseline = f"the search did not beat the uniform baseline: it is the chosen model{gap}"
        else:
            gap = 100 * (dev - u)
            if abs(gap) < 1e-9:  # a tie on dev: the cheaper model was chosen
                verdict.baseline = (
                    f"the search's model tied the uniform baseline on dev ({_test_gap(chosen, uniform, metric)})"
                )
            elif gap > 0:
                verdict.baseline = (
                    f"the search's model beat the uniform baseline by {gap:.2f} points on dev "
                    f"({_test_gap(chosen, uniform, metric)})"
                )
            else:
                verdict.baseline = (
                    f"the uniform baseline scored {-gap:.2f} points above the chosen model on dev but "
                    f"is not eligible ({'; '.join(uniform.get('violations', [])) or 'over budget'})"
                )
                verdict.reasons.append(f"dev {metric} is {-gap:.2f} points behind the uniform baseline")
    return verdict


def _test_gap(a: dict, b: dict, metric: str) -> str:
    if "test" not in a["metrics"] or "test" not in b["metrics"]:
        return "no labelled test split"
    return f"{100 * (a['metrics']['test'][metric] - b['metrics']['test'][metric]):+.2f} on test"
