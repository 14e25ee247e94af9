"""A strategy from outside the package (test_toy_strategy registers it): draws architectures of the
space at random, tags every trial with its ``tag`` option and stops after ``picks`` of them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import optuna
from pydantic import Field

from bertsmith.arch import Int
from bertsmith.search.strategies import SearchContext, Strategy, StrategyOptions


class ToyOptions(StrategyOptions):
    picks: Int = Field(2, ge=1, description="architectures to evaluate (replaces --trials)")
    tag: str = Field("toy", description="written into every trial's user attrs")


class Toy(Strategy):
    name = "toy"
    Options = ToyOptions
    options: ToyOptions

    def trials(self, requested: int) -> int:
        return self.options.picks

    def run(self, search: SearchContext) -> None:
        rng = np.random.default_rng(search.seed)
        while not search.done():
            search.evaluate(search.space.sample(rng), toy_tag=self.options.tag)

    def summary(self, study: optuna.Study, run_dir: Path, metric: str, objectives: Sequence[str]) -> list[str]:
        tagged = sum(t.user_attrs.get("toy_tag") == self.options.tag for t in study.trials)
        return [f"toy: {tagged} trials tagged {self.options.tag}"]
