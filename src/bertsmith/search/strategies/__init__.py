"""Search strategies: how architectures are proposed. One file per strategy, registered in ``STRATEGIES``
(``register``); what a strategy declares and the order in which the search calls it: ``base.py``.

A strategy's ``run(search)`` proposes architectures until ``search.done()``; the ``Search`` (``loop.py``)
records each proposal as a trial, checks it against the budget, evaluates it once and keeps the Pareto
files current. Sampler-driven strategies (``SamplerStrategy``) let an Optuna sampler propose gene
values and hand each trial to the search; a strategy with its own loop (budgeted pruning, extracting a
grid, an evolution that keeps its own population) builds ArchSpecs itself and calls
``search.evaluate(spec, **attrs)``, which creates the trial.
"""

from __future__ import annotations

from .base import EvaluatorSetup, SamplerStrategy, SearchContext, Strategy, StrategyOptions, parse_options
from .extract import Extract
from .nsga2 import NSGA2
from .progressive import Progressive
from .prune import Prune
from .random import Random

STRATEGIES: dict[str, type[Strategy]] = {}


def register(strategy: type[Strategy]) -> type[Strategy]:
    """Make ``strategy`` available by its ``name`` to ``bertsmith search`` and ``bertsmith run``."""
    STRATEGIES[strategy.name] = strategy
    return strategy


for _builtin in (Random, NSGA2, Prune, Extract, Progressive):
    register(_builtin)

__all__ = [
    "STRATEGIES",
    "EvaluatorSetup",
    "SamplerStrategy",
    "SearchContext",
    "Strategy",
    "StrategyOptions",
    "parse_options",
    "register",
]
