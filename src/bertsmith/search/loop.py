"""The search loop: a strategy proposes architectures, the ``Search`` records each as a trial of the
study, evaluates it when it fits the budget and is new, and keeps the Pareto files current.

Every proposal becomes one trial:

- over budget: not evaluated; COMPLETE with the values (-inf, *costs) (Optuna's storage keeps -inf,
  and -inf is below any score, so the trial can never enter the front) and ``feasible`` False;
- the same architecture (its ArchSpec JSON) as an earlier complete trial: not evaluated again; that
  trial's values and attrs are copied and ``duplicate_of`` names it;
- unbuildable gene values (``SpecError``): FAIL with ``feasible`` False and the reason as violation;
- otherwise evaluated: COMPLETE with (metric, *costs), or FAIL with ``error`` when the evaluator
  raises a ``BertsmithError`` or ``FloatingPointError`` (or returns a non-finite metric). Any other
  exception fails the trial and stops the search.

``trials`` counts evaluated architectures (complete, feasible, not duplicates) over the whole study,
so a resumed search runs only the rest; the time budget likewise sums the evaluation seconds of all of
the study's trials. Every trial's user attrs hold ``spec``, ``summary``, ``costs``, ``constraints``,
``violations``, ``feasible``, ``metrics``, ``details``, ``seconds``, ``host``, ``pid``, ``worker``
and ``heartbeat``.

Several workers may run one study at once (``study.py``: heartbeats, retries, and the claim of each
worker number, so that two workers with the same ``--worker`` are refused). Two rules keep them
from wasting work: a worker does not start a trial while the trials that other live workers are
running would already reach ``trials`` (it waits for them, and takes over their retries if they die),
and a worker whose proposal is being evaluated by another live worker waits for that result and
copies it as a duplicate instead of evaluating the architecture a second time.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..arch import ArchSpec
from ..errors import BertsmithError, ConfigError
from ..files import atomic_write_text
from ..lock import held
from .costs import COSTS, CostModel
from .evaluators import Evaluation, Evaluator
from .pareto import Point, write_pareto
from .space import SearchSpace
from .strategies import STRATEGIES, SamplerStrategy, Strategy
from .study import HEARTBEAT, HOST, Heartbeat, WorkerClaim, open_study, recover_stale_trials

STALL_FACTOR = 50  # a search stops after STALL_FACTOR × trials proposals in a row that evaluate nothing new
WORKER_SEED_STRIDE = 1_000_003  # --worker K proposes from seed + K × stride, apart from the other workers
RESULTS_LOCK = ".results.lock"
POLL = 1.0  # seconds between looks at other workers' trials while waiting for them
KINDS = ("evaluated", "infeasible", "duplicates", "failed")


@dataclass
class SearchResult:
    """Counts are over the whole study (``KINDS``). ``stopped``: why the search ended before ``trials``
    evaluated architectures (None when it reached them). ``strategy``: the strategy that ran (its
    ``summary`` describes the results)."""

    study: optuna.Study
    front: list[Point]
    evaluated: int
    infeasible: int
    duplicates: int
    failed: int
    stopped: str | None
    strategy: Strategy


class Search:
    """One run over a study (a ``strategies.SearchContext``): strategies call ``ask``/``tell``/``reject`` (sampler-driven) or
    ``evaluate`` (their own proposals) until ``done()``. ``seed``: this run's seed for proposals.
    ``sampler``: builds the study's sampler from a seed; each new trial gets one seeded by
    ``sampler_seed`` plus the number of trials the study holds, so that a search killed and resumed
    proposes what an uninterrupted one would have (the samplers keep no state but their random
    numbers: the rest they read from the study).
    After every trial: ``counts`` (by ``KINDS``), ``seconds`` (evaluation time) and ``front`` are the
    whole study's."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        evaluator: Evaluator,
        cost_model: CostModel,
        objectives: Sequence[str],
        run_dir: Path,
        *,
        trials: int,
        time_budget: float | None = None,
        seed: int = 0,
        on_record: Callable[["Search"], None] | None = None,
        worker: int = 0,
        heartbeat: Heartbeat | None = None,
        sampler: Callable[[int], optuna.samplers.BaseSampler] | None = None,
        sampler_seed: int = 0,
    ):
        self.study, self.space, self.evaluator, self.cost_model = study, space, evaluator, cost_model
        self.objectives, self.run_dir = tuple(objectives), Path(run_dir)
        self.trials, self.time_budget, self.seed, self.on_record = trials, time_budget, seed, on_record
        self.worker, self.heartbeat = worker, heartbeat
        self.sampler, self.sampler_seed = sampler, sampler_seed
        self._stalled = 0
        self._next: optuna.Trial | None = None
        self._record()

    # ---- where the search stands -------------------------------------------------------------------
    def _read(self) -> list[FrozenTrial]:
        """Reread the study: counts, evaluation seconds, original trials, other workers' running trials."""
        trials = self.study.get_trials(deepcopy=False)
        self.counts = Counter(_kind(t) for t in trials)
        self.seconds = sum(t.user_attrs.get("seconds", 0.0) for t in trials if t.state.is_finished())
        self._originals: dict[str, FrozenTrial] = {}
        for t in trials:
            if t.state == TrialState.COMPLETE and t.user_attrs.get("duplicate_of") is None:
                self._originals.setdefault(_key(t.user_attrs["spec"]), t)
        self._elsewhere = [t for t in trials if t.state == TrialState.RUNNING and _live_elsewhere(t)]
        return trials

    def _record(self) -> None:
        """Reread the study, rewrite the result files (under a lock, so that of the workers sharing a
        run directory the last to write has read the study last), report progress."""
        with held(self.run_dir / RESULTS_LOCK):
            self.front = write_pareto(self.run_dir, self._read(), self.evaluator.metric)
        if self.on_record:
            self.on_record(self)

    def _pause(self) -> None:
        """Let a moment pass while other workers run their trials, then fail the trials of workers
        that died (enqueuing their retries)."""
        time.sleep(POLL)
        recover_stale_trials(self.study)

    @property
    def evaluated(self) -> int:
        return self.counts["evaluated"]

    def cut_short(self) -> str | None:
        """Why the search must stop before reaching ``trials`` evaluated architectures, if it must."""
        if self.time_budget is not None and self.seconds >= self.time_budget:
            return f"the time budget of {self.time_budget:g} s is spent ({self.seconds:.1f} s of evaluation)"
        if self._stalled >= STALL_FACTOR * self.trials:
            return (
                f"{self._stalled} proposals in a row evaluated nothing new (over budget, unbuildable, "
                f"already evaluated or failed): the space may hold fewer than {self.trials} architectures "
                "within the budget"
            )
        return None

    def done(self) -> bool:
        """True once the study holds ``trials`` evaluated architectures (or the search must stop).
        Otherwise the next trial is reserved (``ask`` returns it). With other live workers, the count
        is exact: a worker waits while the trials they run would reach it, and gives up a reserved
        trial that their lower-numbered running trials make surplus (PRUNED, ``surplus``)."""
        while True:
            self._read()
            if self.evaluated >= self.trials or self.cut_short() is not None:
                self.close()
                return True
            if self._next is None:
                if self.evaluated + len(self._elsewhere) < self.trials:
                    self._next = self._new_trial()
                    continue  # read again: did another worker reserve one at the same moment?
            elif self.evaluated + sum(t.number < self._next.number for t in self._elsewhere) < self.trials:
                return False
            else:
                self.close()
            self._pause()

    def close(self) -> None:
        """Give up the reserved trial, if any; a reserved retry is enqueued again."""
        trial, self._next = self._next, None
        if trial is None:
            return
        frozen = self.study._storage.get_trial(trial._trial_id)
        if "fixed_params" in frozen.system_attrs:
            self.study.enqueue_trial(
                frozen.system_attrs["fixed_params"],
                user_attrs={k: v for k, v in frozen.user_attrs.items() if k in ("retry_of", "retries")},
            )
        _set(trial, surplus=True)
        self._stop_beating(trial)
        self.study.tell(trial, state=TrialState.PRUNED)

    def known(self, spec: ArchSpec) -> FrozenTrial | None:
        """The study's original complete trial of ``spec``, None when it has none (a strategy with a
        fixed list of architectures skips those a resumed search already scored)."""
        return self._originals.get(_key(spec.to_dict()))

    # ---- recording proposals ---------------------------------------------------------------------
    def ask(self) -> optuna.Trial:
        """The trial that ``done`` reserved, or a new one."""
        trial, self._next = self._next or self._new_trial(), None
        return trial

    def _stop_beating(self, trial: optuna.Trial | FrozenTrial) -> None:
        """No more heartbeats for this finished trial."""
        if self.heartbeat is not None:
            self.heartbeat.stop(trial._trial_id)

    def _new_trial(self) -> optuna.Trial:
        """A new trial (an enqueued retry first, after failing the trials of workers that died), marked
        with this host, process and worker, with its heartbeat running."""
        if self.heartbeat is not None and self.heartbeat.claim is not None:
            self.heartbeat.claim.check()  # another worker with this worker number started at the same moment
        recover_stale_trials(self.study)
        with warnings.catch_warnings():  # the search runs the heartbeat that Study.optimize would (``Heartbeat``)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            if self.sampler is not None:
                self.study.sampler = self.sampler(self.sampler_seed + len(self.study.get_trials(deepcopy=False)))
            trial = self.study.ask()
        if self.heartbeat is not None:
            self.heartbeat.start(trial._trial_id)
        _set(
            trial,
            host=HOST,
            pid=os.getpid(),
            worker=self.worker,
            heartbeat=self.heartbeat.interval if self.heartbeat is not None else None,
        )
        return trial

    def tell(self, trial: optuna.Trial, spec: ArchSpec, **attrs: Any) -> FrozenTrial:
        """Cost, check, and (when it fits and is new) evaluate ``spec`` as ``trial``; ``attrs`` are
        kept as user attrs (the search's own attrs take precedence)."""
        _set(trial, **attrs | {"spec": spec.to_dict(), "summary": spec.summary()})
        earlier = self._claim(trial, _key(spec.to_dict()))
        if earlier is not None:
            copied = {
                k: earlier.user_attrs[k]
                for k in ("costs", "constraints", "violations", "feasible", "metrics", "details")
            }
            return self._complete(trial, earlier.values, **copied, seconds=0.0, duplicate_of=earlier.number)
        costs, violations = self._cost(trial, spec)
        if violations:
            return self._complete(
                trial, [-math.inf, *(costs[n] for n in self.objectives)], metrics={}, details={}, seconds=0.0
            )
        start = time.perf_counter()
        try:
            evaluation = self.evaluator.evaluate(spec, self.run_dir / "trials" / f"{trial.number:05d}")
            value = self._metric(evaluation)
        except (BertsmithError, FloatingPointError) as exc:
            return self._fail(trial, exc, time.perf_counter() - start)
        except Exception as exc:
            self._fail(trial, exc, time.perf_counter() - start)
            raise
        return self._complete(
            trial,
            [value, *(costs[n] for n in self.objectives)],
            metrics=_floats(evaluation.metrics),
            details=evaluation.details,
            seconds=evaluation.seconds,
        )

    def record(self, spec: ArchSpec, evaluation: Evaluation, **attrs: Any) -> FrozenTrial:
        """Record ``spec`` with an evaluation the strategy made itself (a model it trained, e.g. a
        pruning round): costed and checked like any proposal, but not handed to the evaluator and
        never a duplicate (the same shape reached another way is another result). Over budget, its
        value is -inf like any infeasible trial and its metrics are kept in the attrs."""
        trial = self.ask()
        _set(trial, **attrs | {"spec": spec.to_dict(), "summary": spec.summary()})
        costs, violations = self._cost(trial, spec)
        value = -math.inf if violations else self._metric(evaluation)
        return self._complete(
            trial,
            [value, *(costs[n] for n in self.objectives)],
            metrics=_floats(evaluation.metrics),
            details=evaluation.details,
            seconds=evaluation.seconds,
            recorded=True,
        )

    def _claim(self, trial: optuna.Trial, key: str) -> FrozenTrial | None:
        """The study's complete original trial of the architecture ``key``, read afresh and after
        waiting for any other live worker's trial that is evaluating it (None: this trial evaluates
        it). Two trials that each find the other wait for the lower-numbered one."""
        waiting_for = None
        while True:
            trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
            same = [t for t in trials if t.number != trial.number and _key(t.user_attrs.get("spec") or {}) == key]
            original = next(
                (t for t in same if t.state == TrialState.COMPLETE and t.user_attrs.get("duplicate_of") is None), None
            )
            first = next((t for t in same if t.state == TrialState.RUNNING and _live_elsewhere(t)), None)
            if (
                original is not None
                or first is None
                or (first.user_attrs.get("waiting_for") == trial.number and trial.number < first.number)
            ):
                break
            if waiting_for != first.number:
                waiting_for = first.number
                _set(trial, waiting_for=waiting_for)
            self._pause()
        if waiting_for is not None:
            _set(trial, waiting_for=None)
        return original

    def _cost(self, trial: optuna.Trial, spec: ArchSpec) -> tuple[dict[str, float], list[str]]:
        costs = self.cost_model.costs(spec, self.objectives)
        violations = self.cost_model.violations(spec, costs)
        _set(
            trial,
            costs=costs,
            constraints=self.cost_model.constraints(spec, costs),
            violations=violations,
            feasible=not violations,
        )
        return costs, violations

    def _metric(self, evaluation: Evaluation) -> float:
        value = float(evaluation.metrics[self.evaluator.metric])
        if not math.isfinite(value):
            raise FloatingPointError(f"the metric {self.evaluator.metric} is {value}")
        return value

    def reject(self, trial: optuna.Trial, reason: str) -> FrozenTrial:
        """Record a proposal that cannot be built: infeasible, with ``reason``."""
        _set(trial, feasible=False, violations=[reason], seconds=0.0)
        return self._finish(self.study.tell(trial, state=TrialState.FAIL))

    def evaluate(self, spec: ArchSpec, **attrs: Any) -> FrozenTrial:
        """Propose ``spec`` in a new trial (for strategies that build architectures themselves)."""
        return self.tell(self.ask(), spec, **attrs)

    def _complete(self, trial: optuna.Trial, values: Sequence[float], **attrs: Any) -> FrozenTrial:
        _set(trial, **attrs)
        return self._finish(self.study.tell(trial, list(values)))

    def _fail(self, trial: optuna.Trial, exc: BaseException, seconds: float) -> FrozenTrial:
        _set(trial, error=f"{type(exc).__name__}: {exc}", seconds=seconds)
        return self._finish(self.study.tell(trial, state=TrialState.FAIL))

    def _finish(self, frozen: FrozenTrial) -> FrozenTrial:
        self._stop_beating(frozen)
        self._stalled = 0 if _kind(frozen) == "evaluated" else self._stalled + 1
        self._record()
        return frozen


def run_search(
    space: SearchSpace | None,
    evaluator: Evaluator,
    cost_model: CostModel,
    *,
    run_dir: Path,
    trials: int,
    objectives: Sequence[str] = ("params",),
    strategy: str = "nsga2",
    strategy_options: dict[str, Any] | None = None,
    storage: str | None = None,
    study_name: str = "search",
    time_budget: float | None = None,
    seed: int = 0,
    progress: bool = False,
    settings: dict[str, Any] | None = None,
    teacher: str = "",
    worker: int = 0,
    heartbeat: int = HEARTBEAT,
) -> SearchResult:
    """Search ``space`` until the study holds ``trials`` evaluated architectures (or ``time_budget``
    seconds of evaluation are spent), maximising the evaluator's metric and minimising the
    ``objectives`` costs within the cost model's budget. ``space`` may be None for a strategy that
    takes none (``Strategy.spaceless``). The strategy is called in the order ``strategies/base.py`` gives. ``storage``: a SQLAlchemy URL, by default
    ``sqlite:///RUN_DIR/study.db``; rerunning the same search resumes it, and several workers (each
    with its own ``worker`` number, which sets its proposals' seed; a number that a live worker holds
    is refused, see ``WorkerClaim``) may run it at once. ``teacher``:
    the teacher's digest, which the study checks. ``heartbeat``: seconds between the heartbeats of a
    running trial. ``settings``: written to ``RUN_DIR/search.json`` once the study has accepted this
    search (a refused one leaves it alone)."""
    objectives = tuple(objectives)
    proposer = check_settings(objectives, trials, time_budget, strategy, strategy_options or {})
    run_dir = Path(run_dir)
    if space is not None:
        _check_fits(space, cost_model, objectives)
    elif proposer.spaceless is None:
        raise ConfigError(f"strategy {strategy!r} proposes architectures from a search space: give one (--space)")
    if worker < 0:
        raise ConfigError(f"worker = {worker}: expected a number ≥ 0")
    if heartbeat < 1:
        raise ConfigError(f"heartbeat = {heartbeat}: expected a whole number of seconds ≥ 1")
    proposer.check(evaluator, cost_model, run_dir)
    proposer.plan(evaluator, cost_model, run_dir, trials)
    trials = proposer.trials(trials)
    study = open_study(
        storage or f"sqlite:///{run_dir / 'study.db'}",
        study_name,
        space_digest=space.digest() if space is not None else proposer.start_digest(evaluator),
        teacher=teacher,
        evaluator=evaluator.fingerprint(),
        objectives=[evaluator.metric, *objectives],
        budget=cost_model.fingerprint(),
        heartbeat=heartbeat,
    )
    _check_workers(study, strategy, proposer)
    beats = Heartbeat(study, heartbeat, WorkerClaim(study, worker, heartbeat))  # refuses a worker number in use
    try:
        if settings is not None:
            atomic_write_text(run_dir / "search.json", json.dumps(settings, indent=1, default=str))
        evaluator.prepare()  # expensive set-up (a supernet) only once the study has accepted the evaluator
        run_seed = seed + len(study.get_trials(deepcopy=False)) + WORKER_SEED_STRIDE * worker
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("evaluated"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            disable=not progress,
        )
        with bar:
            task = bar.add_task(f"search ({strategy})", total=trials, info="")

            def report(s: Search) -> None:
                bar.update(
                    task,
                    total=s.trials,
                    completed=min(s.evaluated, s.trials),
                    info=f"front {len(s.front)} · "
                    f"infeasible {s.counts['infeasible']} · repeats {s.counts['duplicates']} · failed "
                    f"{s.counts['failed']}",
                )

            search = Search(
                study,
                space,
                evaluator,
                cost_model,
                objectives,
                run_dir,
                trials=trials,
                time_budget=time_budget,
                seed=run_seed,
                on_record=report,
                worker=worker,
                heartbeat=beats,
                sampler=proposer.sampler,
                sampler_seed=seed + WORKER_SEED_STRIDE * worker,
            )
            proposer.run(search)
            search.close()
    finally:
        beats.close()
    stopped = (
        None
        if search.evaluated >= search.trials
        else (search.cut_short() or f"the strategy {strategy!r} made no more proposals")
    )
    return SearchResult(study, search.front, *(search.counts[k] for k in KINDS), stopped=stopped, strategy=proposer)


def _check_workers(study: optuna.Study, strategy: str, proposer: Strategy) -> None:
    """Refuse a second worker for a strategy that runs in one process."""
    if isinstance(proposer, SamplerStrategy):
        return
    elsewhere = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if _live_elsewhere(t)]
    if elsewhere:
        t = elsewhere[0].user_attrs
        raise ConfigError(
            f"strategy {strategy!r} runs in one worker, and one is running this study (process "
            f"{t['pid']} on {t['host']}); several workers share the sampler strategies "
            f"({', '.join(n for n, c in STRATEGIES.items() if issubclass(c, SamplerStrategy))})"
        )


def check_settings(
    objectives: Sequence[str], trials: int, time_budget: float | None, strategy: str, strategy_options: dict[str, Any]
) -> Strategy:
    """Refuse bad search settings (before anything expensive happens); returns the strategy."""
    _check(tuple(objectives), trials, time_budget)
    return make_strategy(strategy, strategy_options)


def make_strategy(name: str, options: dict[str, Any]) -> Strategy:
    """The registered strategy ``name`` with ``options`` (refused when unknown or bad)."""
    if name not in STRATEGIES:
        raise ConfigError(f"strategy {name!r}: unknown (known: {', '.join(STRATEGIES)})")
    try:
        return STRATEGIES[name](**options)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from None


def _check(objectives: tuple[str, ...], trials: int, time_budget: float | None) -> None:
    unknown = [name for name in objectives if name not in COSTS]
    if not objectives or unknown or len(set(objectives)) < len(objectives):
        raise ConfigError(f"objectives {list(objectives)}: expected one or more distinct costs of {', '.join(COSTS)}")
    if trials < 1:
        raise ConfigError(f"trials = {trials}: at least 1")
    if time_budget is not None and time_budget <= 0:
        raise ConfigError(f"time budget = {time_budget}: expected a positive number of seconds")


def _check_fits(space: SearchSpace, cost_model: CostModel, objectives: tuple[str, ...]) -> None:
    """Refuse a budget that even the space's smallest architecture exceeds."""
    smallest = space.extreme(False)
    violations = cost_model.violations(smallest, cost_model.costs(smallest, objectives))
    if violations:
        raise ConfigError(
            f"no architecture in the space fits the budget: the smallest ({smallest.summary()}) "
            f"has {', '.join(violations)}"
        )


def _kind(trial: FrozenTrial) -> str | None:
    """Which of ``KINDS`` a finished trial is (None while it runs or waits)."""
    attrs = trial.user_attrs
    if trial.state == TrialState.COMPLETE:
        if attrs.get("duplicate_of") is not None:
            return "duplicates"
        return "evaluated" if attrs["feasible"] else "infeasible"
    if trial.state == TrialState.FAIL:
        return "infeasible" if attrs.get("feasible") is False else "failed"
    return None


def _live_elsewhere(trial: FrozenTrial) -> bool:
    """A trial that another worker's heartbeat watches (not this process's, nor one of a search from
    before heartbeats, which no one would ever fail)."""
    attrs = trial.user_attrs
    return attrs.get("heartbeat") is not None and (attrs.get("host"), attrs.get("pid")) != (HOST, os.getpid())


def _key(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def _set(trial: optuna.Trial, **attrs: Any) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
