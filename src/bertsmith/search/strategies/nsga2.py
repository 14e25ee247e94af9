"""``nsga2``: the genetic algorithm NSGA-II (Optuna's NSGAIISampler) over the genes, with constrained
domination: a trial within budget ranks above every trial over it, and of two over-budget trials the
one that exceeds the budget less ranks higher. The constraint values are the ones the search stores
in each trial's ``constraints`` user attr (``CostModel.constraints``: value/limit − 1 per bound)."""

from __future__ import annotations

import warnings

import optuna

from pydantic import Field

from ...arch import Int
from .base import SamplerStrategy, StrategyOptions


class NSGA2Options(StrategyOptions):
    population_size: Int = Field(
        16,
        ge=2,
        description="architectures per generation (at least 2: two parents per "
        "child); 16 suits searches of a few dozen to a few hundred architectures (Optuna's "
        "default of 50 spends a whole small search on the random first generation)",
    )


class NSGA2(SamplerStrategy):
    name = "nsga2"
    Options = NSGA2Options
    options: NSGA2Options

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        # Optuna 5 deprecates constraints_func for Trial.set_constraint, which Optuna 4 lacks;
        # constraints_func works in both.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.NSGAIISampler(
                population_size=self.options.population_size, seed=seed, constraints_func=_constraints
            )


def _constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    """The budget constraints (≤ 0: met); none for a trial given up before it proposed anything (a
    surplus trial, PRUNED, which NSGA-II never selects)."""
    return trial.user_attrs.get("constraints", [])
