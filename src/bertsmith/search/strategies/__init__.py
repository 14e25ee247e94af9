"""Search strategies: how architectures are proposed. One file per strategy, registered in ``STRATEGIES``.

A strategy's ``run(search)`` proposes architectures until ``search.done()``; the ``Search`` (``loop.py``)
records each proposal as a trial, checks it against the budget, evaluates it once and keeps the Pareto
files current. Sampler-driven strategies (``SamplerStrategy``) let an Optuna sampler propose gene
values and hand each trial to the search; a strategy with its own loop (budgeted pruning, extracting a
grid, an evolution that keeps its own population) builds ArchSpecs itself and calls
``search.evaluate(spec, **attrs)``, which creates the trial.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from ...errors import SpecError

if TYPE_CHECKING:
    from ..costs import CostModel
    from ..evaluators import Evaluator
    from ..loop import Search


class Strategy(ABC):
    """Proposes architectures; its options are its constructor's keyword arguments. A sampler's random
    numbers come from the seed and the number of trials in the study (so a resumed search proposes what
    an uninterrupted one would); a strategy with its own loop draws from ``search.seed`` (different for
    every run of a study, so a resumed search does not replay)."""

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The study's sampler. A strategy that builds its own architectures never asks it for values."""
        return optuna.samplers.RandomSampler(seed=seed)

    @abstractmethod
    def run(self, search: "Search") -> None:
        """Propose architectures until ``search.done()``."""

    def check(self, evaluator: "Evaluator", cost_model: "CostModel", run_dir: Path) -> None:
        """Refuse what this strategy cannot do with these inputs, before the study is opened (so a
        refused search writes nothing)."""

    def trials(self, requested: int) -> int:
        """How many evaluated architectures the search waits for (a strategy with a fixed number of
        results, like pruning, replaces the ``--trials`` request)."""
        return requested

    def start_digest(self, evaluator: "Evaluator") -> str:
        """What a study of a strategy without a search space records as its space: the starting model."""
        raise NotImplementedError(f"{type(self).__name__} searches a space")


class SamplerStrategy(Strategy):
    """An Optuna sampler proposes the genes (``SearchSpace.genes``) of every trial."""

    @abstractmethod
    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The sampler that proposes gene values."""

    def run(self, search: "Search") -> None:
        while not search.done():
            trial = search.ask()
            try:
                spec = search.space.suggest(trial)
            except SpecError as exc:  # genes that cannot be built together
                search.reject(trial, str(exc))
            else:
                search.tell(trial, spec)


from .extract import Extract  # noqa: E402  (the strategies subclass the classes above)
from .nsga2 import NSGA2  # noqa: E402
from .progressive import Progressive  # noqa: E402
from .prune import Prune  # noqa: E402
from .random import Random  # noqa: E402

STRATEGIES: dict[str, type[Strategy]] = {"random": Random, "nsga2": NSGA2, "prune": Prune, "extract": Extract,
                                          "progressive": Progressive}
