"""The search loop: budgets, duplicates, evaluator failures, stopping, and resuming after kill -9.

``FakeEvaluator`` scores an architecture by a deterministic function of its spec and logs every
evaluated spec, so the tests see exactly what was evaluated."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bertsmith.arch import ArchSpec
from bertsmith.cost import encoder_params
from bertsmith.errors import ConfigError, SpecError
from bertsmith.search.budget import Budget
from bertsmith.search.costs import CostModel
from bertsmith.search.evaluators import Evaluation, Evaluator
from bertsmith.search import loop
from bertsmith.search.loop import run_search
from bertsmith.search.space import SearchSpace
from bertsmith.search.strategies import STRATEGIES, Strategy

REPO = Path(__file__).resolve().parents[2]
# 300 architectures; grouped FFNs with 3 groups only build at hidden 48, so some gene values are unbuildable
SPACE = {
    "depth": [1, 2],
    "hidden": [16, 32, 48],
    "layer": {
        "heads": [1, 2],
        "qk_dim": [8],
        "v_dim": [8],
        "ffn": [48, 96],
        "ffn_kind": ["dense", "grouped"],
        "groups": [2, 3],
    },
    "per_layer": True,
    "embeddings": {"vocab_size": 97, "max_positions": 40},
}
BUDGET = Budget(params=8000)  # about half of the space


class FakeEvaluator(Evaluator):
    """``score``: log(params) plus a hash-based term in [0, 0.5); appends each spec to ``log``;
    reports ``seconds`` per evaluation without taking them; sleeps ``hang`` seconds in evaluation
    number ``hang_at`` (0-based); raises ``errors[summary]`` for the listed architectures."""

    name, metric = "fake", "score"

    def __init__(
        self,
        log: Path | None = None,
        *,
        seconds: float = 0.0,
        hang_at: int | None = None,
        hang: float = 60.0,
        errors: dict[str, Exception] | None = None,
    ):
        self.log, self.seconds, self.hang_at, self.hang, self.errors = log, seconds, hang_at, hang, errors or {}
        self.calls = 0

    def evaluate(self, spec: ArchSpec, workdir: Path) -> Evaluation:
        key = spec.to_json(indent=None)
        if self.log:
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(key + "\n")
        if self.calls == self.hang_at:
            time.sleep(self.hang)
        self.calls += 1
        if spec.summary() in self.errors:
            raise self.errors[spec.summary()]
        return Evaluation({"score": score(spec), "other": 1.0}, seconds=self.seconds, details={"fake": True})

    def fingerprint(self) -> dict:
        return {"kind": "fake"}


def score(spec: ArchSpec) -> float:
    noise = int(hashlib.sha256(spec.to_json(indent=None).encode()).hexdigest()[:8], 16) / 16**8
    return math.log(encoder_params(spec)) + 0.5 * noise


def space(**changes) -> SearchSpace:
    return SearchSpace.from_dict({**SPACE, **changes})


def search(
    tmp_path: Path,
    evaluator: Evaluator | None = None,
    *,
    space: SearchSpace | None = None,
    budget: Budget = BUDGET,
    trials: int = 8,
    strategy: str = "random",
    **kwargs,
):
    """``run_search`` in ``tmp_path/run`` with the test space, the fake evaluator and ``BUDGET``."""
    return run_search(
        space or SearchSpace.from_dict(SPACE),
        evaluator or FakeEvaluator(),
        CostModel(budget),
        run_dir=tmp_path / "run",
        trials=trials,
        strategy=strategy,
        **kwargs,
    )


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_over_budget_proposals_are_recorded_with_their_costs_not_evaluated(tmp_path):
    log = tmp_path / "log"
    result = search(tmp_path, FakeEvaluator(log), trials=10)
    trials = result.study.trials
    over = [t for t in trials if t.state == TrialState.COMPLETE and not t.user_attrs["feasible"]]
    assert over and result.evaluated == 10 and result.infeasible >= len(over)
    for t in over:
        spec = ArchSpec.from_dict(t.user_attrs["spec"])
        assert t.values == [-math.inf, encoder_params(spec)] and t.user_attrs["costs"]["params"] > 8000
        assert t.user_attrs["violations"] == BUDGET.violations(spec) and max(t.user_attrs["constraints"]) > 0
        assert spec.to_json(indent=None) not in logged(log)
    evaluated = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.user_attrs["feasible"] and "duplicate_of" not in t.user_attrs
    ]
    assert [t.user_attrs["spec"] for t in evaluated] == [json.loads(line) for line in logged(log)]
    for t in evaluated:
        assert t.values[0] == pytest.approx(score(ArchSpec.from_dict(t.user_attrs["spec"])))
        assert {"host", "pid", "seconds", "details", "metrics", "summary"} <= set(t.user_attrs)


class Listed(Strategy):
    """Evaluates the given architectures in order: a strategy that makes its own proposals."""

    def __init__(self, specs: list[ArchSpec]):
        self.specs = specs

    def run(self, search):
        for spec in self.specs:
            if search.done():
                return
            search.evaluate(spec, origin="listed")


@pytest.fixture
def listed(monkeypatch):
    monkeypatch.setitem(STRATEGIES, "listed", Listed)
    s = space()
    return [s.from_genes({"depth": 1, "hidden": 16, "layer0.heads": h}) for h in (1, 2)] + [s.extreme(True)]


def test_duplicates_are_not_evaluated_twice(tmp_path, listed):
    a, b, big = listed
    log = tmp_path / "log"
    result = search(
        tmp_path, FakeEvaluator(log), trials=5, strategy="listed", strategy_options={"specs": [a, b, a, big, big, b]}
    )
    assert logged(log) == [a.to_json(indent=None), b.to_json(indent=None)]
    assert (result.evaluated, result.infeasible, result.duplicates) == (2, 1, 3)
    assert result.stopped == "the strategy 'listed' made no more proposals"
    trials = result.study.trials
    assert [t.user_attrs.get("duplicate_of") for t in trials] == [None, None, 0, None, 3, 1]
    for t in trials[2], trials[4], trials[5]:
        original = trials[t.user_attrs["duplicate_of"]]
        assert t.values == original.values and t.user_attrs["feasible"] == original.user_attrs["feasible"]
        assert t.user_attrs["origin"] == "listed"


def test_unbuildable_gene_values_are_infeasible_with_the_reason(tmp_path):
    result = search(tmp_path, budget=Budget(), trials=12)
    rejected = [t for t in result.study.trials if t.state == TrialState.FAIL]
    assert rejected and result.infeasible == len(rejected) and result.failed == 0
    for t in rejected:
        assert t.user_attrs["feasible"] is False and "groups" in t.user_attrs["violations"][0]


def test_evaluator_errors_fail_the_trial_and_the_search_goes_on(tmp_path, listed):
    a, b, _ = listed
    c = space().from_genes({"depth": 1, "hidden": 32})
    errors = {a.summary(): FloatingPointError("loss is nan"), b.summary(): SpecError("cannot slice")}
    result = search(
        tmp_path, FakeEvaluator(errors=errors), trials=1, strategy="listed", strategy_options={"specs": [a, b, c]}
    )
    assert (result.evaluated, result.failed) == (1, 2)
    assert [t.user_attrs.get("error") for t in result.study.trials] == [
        "FloatingPointError: loss is nan",
        "SpecError: cannot slice",
        None,
    ]

    with pytest.raises(RuntimeError, match="bug"):
        search(
            tmp_path / "bug",
            FakeEvaluator(errors={a.summary(): RuntimeError("bug")}),
            trials=1,
            strategy="listed",
            strategy_options={"specs": [a]},
        )
    [trial] = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'bug/run/study.db'}").trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["error"] == "RuntimeError: bug"


def test_a_search_stops_when_the_space_is_exhausted(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "STALL_FACTOR", 3)  # 3 × 5 proposals in a row without a new architecture
    small = space(depth=[1], hidden=[16], layer={**SPACE["layer"], "ffn_kind": ["dense"]})  # 4 architectures
    result = search(tmp_path, space=small, budget=Budget(), trials=5)
    assert result.evaluated == 4 and result.duplicates >= 15
    assert all("duplicate_of" in t.user_attrs for t in result.study.trials[-15:])
    assert "evaluated nothing new" in result.stopped and "fewer than 5 architectures" in result.stopped


def test_time_budget_counts_evaluation_seconds_across_runs(tmp_path):
    first = search(tmp_path, FakeEvaluator(seconds=1.0), trials=20, time_budget=2.5)
    assert first.evaluated == 3 and "time budget of 2.5 s is spent" in first.stopped
    again = search(tmp_path, FakeEvaluator(seconds=1.0), trials=20, time_budget=4.5)
    assert again.evaluated == 5


def test_no_architecture_fits_the_budget(tmp_path):
    s = space()
    smallest = encoder_params(s.extreme(False))
    with pytest.raises(
        ConfigError,
        match=rf"no architecture in the space fits the budget: the smallest "
        rf"\(L1 h16 .*\) has params {smallest:,} > 1,000",
    ):
        search(tmp_path, space=s, budget=Budget(params=1000))
    assert not (tmp_path / "run").exists()  # no study, no trial


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"objectives": []}, "objectives"),
        ({"objectives": ["watts"]}, "objectives"),
        ({"strategy": "annealing"}, "strategy 'annealing': unknown"),
        ({"strategy": "random", "strategy_options": {"population_size": 4}}, "strategy 'random'"),
        ({"trials": 0}, "trials"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        search(tmp_path, **kwargs)


KILLED_SEARCH = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.search.test_loop import FakeEvaluator, search
search(Path({tmp!r}), FakeEvaluator(Path({log!r}), hang_at=3), trials=8)
"""


def test_a_killed_search_resumes_without_reevaluating(tmp_path):
    log = tmp_path / "log"
    script = tmp_path / "search.py"
    script.write_text(KILLED_SEARCH.format(repo=str(REPO), tmp=str(tmp_path), log=str(log)))
    proc = subprocess.Popen([sys.executable, str(script)], env=os.environ | {"HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 60
        while len(logged(log)) < 4:  # the fourth evaluation hangs
            assert proc.poll() is None and time.monotonic() < deadline, "the search ended before the kill"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = logged(log)
    interrupted = before[-1]

    result = search(tmp_path, FakeEvaluator(log), trials=8)
    after = logged(log)[len(before) :]
    assert result.evaluated == 8 and len(after) == 5
    assert not set(after) & set(before[:-1])  # nothing that finished is evaluated again
    assert after[0] == interrupted  # the interrupted architecture is retried first
    killed = [t for t in result.study.trials if t.state == TrialState.FAIL and "error" in t.user_attrs]
    assert len(killed) == 1 and killed[0].user_attrs["error"].startswith("interrupted: process")
    assert json.loads(interrupted) == killed[0].user_attrs["spec"]
    assert json.loads((tmp_path / "run" / "pareto.json").read_text())  # the files are whole


def test_evaluator_is_prepared_only_after_the_study_accepts_it(tmp_path):
    class Preparing(FakeEvaluator):
        prepared = 0

        def prepare(self) -> None:
            type(self).prepared += 1

    search(tmp_path, Preparing(), trials=2)
    assert Preparing.prepared == 1
    with pytest.raises(ConfigError, match="different search space"):
        search(tmp_path, Preparing(), space=SearchSpace.from_dict(SPACE | {"depth": [1]}), trials=2)
    assert Preparing.prepared == 1


@pytest.mark.parametrize(
    "option,message",
    [
        ({"worker": -1}, "worker = -1: expected a number ≥ 0"),
        ({"heartbeat": 0}, "heartbeat = 0: expected a whole number"),
    ],
)
def test_bad_worker_settings_are_refused_before_the_study_is_made(tmp_path, option, message):
    with pytest.raises(ConfigError, match=message):
        search(tmp_path, **option)
    assert not (tmp_path / "run" / "study.db").exists()


def test_a_single_worker_leaves_no_surplus_trial_and_marks_its_trials(tmp_path):
    result = search(tmp_path, trials=5)
    trials = result.study.get_trials()
    assert all(t.state != TrialState.PRUNED for t in trials)
    assert {(t.user_attrs["worker"], t.user_attrs["heartbeat"]) for t in trials} == {(0, 10)}


@pytest.mark.parametrize("strategy", ["random", "nsga2"])
def test_a_search_stopped_and_resumed_proposes_what_an_uninterrupted_one_does(tmp_path, strategy):
    options = {"population_size": 4} if strategy == "nsga2" else {}
    whole = search(tmp_path / "whole", trials=10, strategy=strategy, strategy_options=options)
    search(tmp_path / "parts", trials=4, strategy=strategy, strategy_options=options)
    resumed = search(tmp_path / "parts", trials=10, strategy=strategy, strategy_options=options)
    specs = [[t.user_attrs.get("summary") for t in result.study.trials] for result in (whole, resumed)]
    assert specs[0] == specs[1] and len(set(specs[0])) > 3


def _in_thread(function, *args, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = function(*args, **kwargs)
        except Exception as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _claim_once_evaluating(url: str, log: Path) -> dict:
    """Worker 0's claim, once its first evaluation (which hangs) is logged."""
    deadline = time.monotonic() + 30
    while not logged(log):
        assert time.monotonic() < deadline, "the worker never evaluated"
        time.sleep(0.05)
    return optuna.load_study(study_name="search", storage=url).user_attrs["worker:0"]


def test_a_second_worker_with_the_same_number_is_refused_before_writing(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first, outcome = _in_thread(
        search, tmp_path / "a", FakeEvaluator(tmp_path / "log", hang_at=0, hang=3), storage=url, trials=3
    )
    _claim_once_evaluating(url, tmp_path / "log")
    with pytest.raises(
        ConfigError,
        match=rf"^worker 0 is already running this study \(process {os.getpid()} on "
        r".*, seen \d+ s ago\): give each worker its own --worker; a worker that "
        r"died frees its number after 60 s$",
    ):
        search(tmp_path / "b", storage=url, trials=3)
    assert not (tmp_path / "b" / "run").exists()
    other = search(tmp_path / "c", storage=url, trials=3, worker=1)  # another number shares the study
    first.join()
    assert "error" not in outcome and other.evaluated == 3
    assert optuna.load_study(study_name="search", storage=url).user_attrs["worker:0"]["released"]
    assert search(tmp_path / "b", storage=url, trials=4).evaluated == 4  # a released number is free


def test_a_worker_whose_number_another_took_at_the_same_moment_stops(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    worker, outcome = _in_thread(
        search, tmp_path, FakeEvaluator(tmp_path / "log", hang_at=0, hang=2), storage=url, trials=3, heartbeat=1
    )
    claim = _claim_once_evaluating(url, tmp_path / "log")
    rival = claim | {"token": "rival", "host": "other-host", "pid": 4242, "seen": time.time() + 60}
    optuna.load_study(study_name="search", storage=url).set_user_attr("worker:0", rival)  # written just after
    worker.join()
    assert isinstance(outcome.get("error"), ConfigError)
    assert str(outcome["error"]).startswith("worker 0 also started on this study (process 4242 on other-host")
    study = optuna.load_study(study_name="search", storage=url)
    assert study.user_attrs["worker:0"] == rival  # not released: it is the other worker's
    trials = study.get_trials()
    evaluated = logged(tmp_path / "log")
    assert len(evaluated) == 1 and json.loads(evaluated[0]) == trials[-1].user_attrs["spec"]  # none after it
