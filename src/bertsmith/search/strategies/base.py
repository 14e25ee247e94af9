"""What a search strategy is: its declarations, its lifecycle, and what it may use of the search.

A strategy is one class (one file in this package, registered with ``register``). It declares:

- ``name``: how ``--strategy`` and the run config's ``search.strategy`` call it;
- ``Options``: a pydantic model of its own options (defaults, bounds, descriptions). ``bertsmith search``
  takes them as ``--option KEY=VALUE`` (the strategies registered when the CLI is built, the built-in
  ones, also get a flag ``--KEY`` per option), the run config as ``search.options``; both validate them
  with this model;
- ``spaceless``: None when it proposes architectures of a search space, else why it takes none;
- ``default_evaluator`` and ``objectives()``: what the search uses when ``--evaluator`` and
  ``--objectives`` are not given;
- ``evaluator_setup()`` and ``shapes()``: how the job builds the evaluator for it (the split it scores
  on, the distillation losses, a validation split carved from train) and, without a search space,
  where a supernet is trained and latency calibrated;
- ``summary()``: what ``bertsmith search`` prints about its results after the Pareto front.

Lifecycle of one search, in this order (``loop.run_search``):

1. ``__init__(**options)``: validates the options (``Options``); refuses bad ones with a ``ConfigError``.
   Touches nothing else.
2. ``check(evaluator, cost_model, run_dir)``: refuses what the strategy cannot do with these inputs.
   Cheap and without side effects: it sets no attribute, trains and writes nothing.
3. ``plan(evaluator, cost_model, run_dir, trials)``: builds what the strategy needs before the study opens
   (its starting model, its candidates); the one step besides ``run`` that may set attributes. It may
   still refuse inputs that only the plan shows to be bad. It writes nothing, so a refused search leaves
   the run directory alone.
4. ``trials(requested)`` and ``start_digest(evaluator)``: read the plan, change nothing: how many evaluated
   architectures the search waits for, and (without a search space) what the study records as its space,
   so that a rerun with another plan is refused instead of mixed into the study.
5. ``run(search)``: proposes architectures through the ``SearchContext`` until ``search.done()``; writes
   its own files under ``RUN_DIR/<name>/``. A resumed search calls it again on the same study.
6. ``summary(study, run_dir, metric, objectives)``: reads the study and the strategy's files; changes
   nothing.

Random numbers: a sampler's come from the seed and the number of trials in the study (so a resumed
search proposes what an uninterrupted one would); a strategy with its own loop draws from
``search.seed`` (different for every run of a study, so a resumed search does not replay).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Protocol, Sequence

import optuna
from optuna.trial import FrozenTrial
from pydantic import BaseModel, ConfigDict, ValidationError

from ...arch import ArchSpec, short_repr
from ...errors import ConfigError, SpecError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ...distill.objectives import LossConfig
    from ..costs import CostModel
    from ..evaluators import Evaluation, Evaluator
    from ..space import SearchSpace


class SearchContext(Protocol):
    """What a strategy may use of the search (``loop.Search``). Every proposal becomes a trial: sampler
    strategies ``ask`` for a trial and ``tell`` it the architecture (or ``reject`` unbuildable gene
    values); strategies with their own loop ``evaluate`` an architecture in a new trial, or ``record``
    one with an evaluation they made themselves. ``trials`` may be raised by a strategy that learns
    during the run how many results it needs."""

    study: optuna.Study
    space: SearchSpace | None
    evaluator: Evaluator
    run_dir: Path
    seed: int
    trials: int
    counts: Mapping[str, int]
    seconds: float

    @property
    def evaluated(self) -> int: ...

    def done(self) -> bool: ...

    def cut_short(self) -> str | None: ...

    def known(self, spec: ArchSpec) -> FrozenTrial | None: ...

    def ask(self) -> optuna.Trial: ...

    def tell(self, trial: optuna.Trial, spec: ArchSpec, **attrs: Any) -> FrozenTrial: ...

    def reject(self, trial: optuna.Trial, reason: str) -> FrozenTrial: ...

    def evaluate(self, spec: ArchSpec, **attrs: Any) -> FrozenTrial: ...

    def record(self, spec: ArchSpec, evaluation: Evaluation, **attrs: Any) -> FrozenTrial: ...


class StrategyOptions(BaseModel):
    """Base of every ``Strategy.Options``: unknown options are refused, values are not changed later."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class EvaluatorSetup:
    """How the job builds the evaluator for a strategy. ``init``: start of the distillations (None: the
    search's ``--init``); ``split``: what candidates are scored on (``validation``: carved out of train,
    ``validation_fraction`` of it, so the search never sees dev); ``losses``: the distillation terms
    (None: the evaluator's default)."""

    init: str | None = None
    split: str = "dev"
    validation_fraction: float | None = None
    losses: LossConfig | None = None


class Strategy(ABC):
    """Proposes architectures (see the module's lifecycle)."""

    name: ClassVar[str]
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    spaceless: ClassVar[str | None] = None
    default_evaluator: ClassVar[str] = "slice"

    def __init__(self, **options: Any):
        self.options = parse_options(type(self), options)

    def objectives(self) -> tuple[str, ...]:
        """The costs minimised beside the metric when ``--objectives`` is not given."""
        return ("params",)

    def evaluator_setup(self, evaluator: str) -> EvaluatorSetup:
        """How the evaluator ``evaluator`` (slice, short, full) is built for this strategy; refuses one
        the strategy cannot use (before anything is loaded)."""
        return EvaluatorSetup()

    def shapes(self, teacher: ArchSpec, init: str) -> SearchSpace | None:
        """Without a search space: the space where the supernet is trained and latency calibrated (None:
        the shapes that pruning the teacher passes through)."""
        return None

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The study's sampler. A strategy that builds its own architectures never asks it for values."""
        return optuna.samplers.RandomSampler(seed=seed)

    def check(self, evaluator: Evaluator, cost_model: CostModel, run_dir: Path) -> None:
        """Refuse what this strategy cannot do with these inputs (cheap; sets nothing)."""

    def plan(self, evaluator: Evaluator, cost_model: CostModel, run_dir: Path, trials: int) -> None:
        """Build what the run needs before the study opens (``trials``: the ``--trials`` asked for)."""

    def trials(self, requested: int) -> int:
        """How many evaluated architectures the search waits for (a strategy with a fixed number of
        results, like pruning, replaces the ``--trials`` request)."""
        return requested

    def start_digest(self, evaluator: Evaluator) -> str:
        """What a study of a strategy without a search space records as its space."""
        raise NotImplementedError(f"{type(self).__name__} searches a space")

    @abstractmethod
    def run(self, search: SearchContext) -> None:
        """Propose architectures until ``search.done()``."""

    def summary(
        self, study: optuna.Study, run_dir: Path, metric: str, objectives: Sequence[str]
    ) -> list[RenderableType]:
        """What ``bertsmith search`` prints about the results after the Pareto front (rich renderables)."""
        return []


class SamplerStrategy(Strategy):
    """An Optuna sampler proposes the genes (``SearchSpace.genes``) of every trial."""

    @abstractmethod
    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The sampler that proposes gene values."""

    def run(self, search: SearchContext) -> None:
        while not search.done():
            trial = search.ask()
            try:
                spec = search.space.suggest(trial)
            except SpecError as exc:  # genes that cannot be built together
                search.reject(trial, str(exc))
            else:
                search.tell(trial, spec)


def parse_options(strategy: type[Strategy], values: Mapping[str, Any], *, where: str | None = None) -> StrategyOptions:
    """``values`` validated by the strategy's ``Options``; a bad one is a one-line ``ConfigError`` that
    names the option and its value, after ``where`` (default ``"NAME: "``; the run config gives
    ``"search.options."``)."""
    where = f"{strategy.name}: " if where is None else where
    try:
        return strategy.Options.model_validate(dict(values))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = ", ".join(strategy.Options.model_fields)
            raise ConfigError(
                f"strategy {strategy.name!r}: unknown option {key!r} "
                + (f"(known: {known})" if known else "(it takes none)")
            ) from None
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}{key} = {short_repr(err.get('input'))}: {msg}") from None
