"""Every registered sampler strategy: exactly N evaluated architectures and the true Pareto front of
its trials; NSGA-II sees the budget's constraints. (``prune`` trains its own models: test_prune_strategy.)"""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState

from bertsmith.errors import ConfigError
from bertsmith.search.costs import CostModel
from bertsmith.search.loop import run_search
from bertsmith.search.pareto import Point
from bertsmith.search.strategies import STRATEGIES, SamplerStrategy, Strategy

from .test_loop import BUDGET, FakeEvaluator, search
from .test_pareto import brute_force_front

OPTIONS = {"nsga2": {"population_size": 6}}  # small generations, so a short search breeds children
SAMPLERS = [name for name, cls in STRATEGIES.items() if issubclass(cls, SamplerStrategy)]


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_strategy_evaluates_exactly_n_architectures_and_finds_the_front(tmp_path, name):
    result = search(
        tmp_path, trials=12, strategy=name, strategy_options=OPTIONS.get(name), objectives=("params", "flops")
    )
    trials = result.study.trials
    originals = [t for t in trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    assert result.evaluated == 12 == sum(t.user_attrs["feasible"] for t in originals) and result.stopped is None
    assert {p.number for p in result.front} == brute_force_front([Point.from_trial(t) for t in originals])
    for p in result.front:
        assert p.feasible and p.costs["params"] <= BUDGET.params and not BUDGET.violations(p.arch())
        assert p.values == (p.metrics["score"], p.costs["params"], p.costs["flops"])
    saved = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert [d["trial"] for d in saved] == [p.number for p in result.front]


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_resumed_search_proposes_anew(tmp_path, name):
    first = search(tmp_path, trials=4, strategy=name, strategy_options=OPTIONS.get(name))
    proposed = [t.params for t in first.study.trials]
    again = search(tmp_path, trials=8, strategy=name, strategy_options=OPTIONS.get(name))
    assert again.evaluated == 8
    assert [t.params for t in again.study.trials[len(proposed) :]][: len(proposed)] != proposed


def test_nsga2_ranks_by_the_budget_constraints(tmp_path):
    result = search(tmp_path, trials=12, strategy="nsga2", strategy_options=OPTIONS["nsga2"])
    complete = [t for t in result.study.trials if t.state == TrialState.COMPLETE]
    # what the sampler's constrained domination reads: the constraint values stored with each trial
    assert all(list(t.system_attrs["constraints"]) == t.user_attrs["constraints"] for t in complete)
    assert any(max(t.user_attrs["constraints"]) > 0 for t in complete)
    assert max(t.system_attrs.get("NSGAIISampler:generation", 0) for t in result.study.trials) >= 1  # it bred


def test_strategies_are_registered_with_their_options(tmp_path):
    assert all(issubclass(cls, Strategy) for cls in STRATEGIES.values())
    assert set(SAMPLERS) == {"random", "nsga2"} and "prune" in STRATEGIES
    with pytest.raises(ConfigError, match="population_size = 1"):
        search(tmp_path, strategy="nsga2", strategy_options={"population_size": 1})


def test_a_sampler_strategy_needs_a_space(tmp_path):
    with pytest.raises(ConfigError, match="strategy 'random' proposes architectures from a search space"):
        run_search(None, FakeEvaluator(), CostModel(BUDGET), run_dir=tmp_path / "run", trials=2, strategy="random")
    assert not (tmp_path / "run").exists()
