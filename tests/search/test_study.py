"""Studies: refused when they searched something else (and left untouched), unreachable storages as
one-line errors without the password, and trials of killed processes failed and retried."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from bertsmith.errors import ConfigError
from bertsmith.search.budget import Budget
from bertsmith.search.study import (
    GRACE,
    HOST,
    MAX_RETRIES,
    Heartbeat,
    WorkerClaim,
    mask_password,
    open_study,
    recover_stale_trials,
    retry,
)

from .test_loop import BUDGET, FakeEvaluator, search, space

IDENTITY = {
    "space_digest": "abc",
    "teacher": "t1",
    "evaluator": {"kind": "fake"},
    "objectives": ["score", "params"],
    "budget": {"params": 8000},
}


def snapshot(study: optuna.Study) -> list:
    return [(t.number, t.state, t.values, t.user_attrs) for t in study.get_trials()]


@pytest.mark.parametrize(
    "changes,what,detail",
    [
        ({"space": space(depth=[1])}, "search space", ' -> "'),
        (
            {"evaluator": type("Other", (FakeEvaluator,), {"fingerprint": lambda self: {"kind": "other"}})()},
            "evaluator",
            'kind: "fake" -> "other"',
        ),
        ({"objectives": ["params", "flops"]}, "objectives", '["score", "params"] -> ["score", "params", "flops"]'),
        ({"budget": Budget(params=9000)}, "budget", "params: 8000 -> 9000"),
        ({"teacher": "another teacher's digest"}, "teacher", '-> "another teacher\'s digest"'),
    ],
)
def test_a_study_of_another_search_is_refused_and_left_untouched(tmp_path, changes, what, detail):
    first = search(tmp_path, trials=3)
    before = snapshot(first.study)
    message = (
        f"study 'search' in sqlite:///.*study.db was created with a different {what}; this worker's differs "
        f"\\(.*{re.escape(detail)}.*\\), so it would mix scores"
    )
    with pytest.raises(ConfigError, match=message):
        search(tmp_path, trials=6, **changes)
    assert snapshot(first.study) == before and len(before) >= 3


def test_a_study_not_made_by_a_search_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(storage=url, study_name="search", directions=["maximize", "minimize"])
    with pytest.raises(
        ConfigError, match="has no search space record: it was not created by this version of bertsmith search"
    ):
        open_study(url, "search", **IDENTITY)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/file/study.db",  # a path under a file
        "postgresql://user:secret@127.0.0.1:1/db",  # no driver, or nothing listening
        "mysql+pymysql://user:secret@127.0.0.1:1/db",
        "nosuchdialect://user:secret@host/db",
    ],
)
def test_unreachable_storage_is_a_config_error_without_the_password(tmp_path, url):
    (tmp_path / "file").write_text("not a directory")
    url = url.format(tmp=tmp_path)
    with pytest.raises(ConfigError, match="cannot open the study storage") as info:
        open_study(url, "search", **IDENTITY)
    assert "secret" not in str(info.value) and "\n" not in str(info.value)
    assert mask_password(url) in str(info.value)


def test_mask_password():
    assert mask_password("postgresql://user:secret@host/db") == "postgresql://user:***@host/db"
    assert mask_password("sqlite:///a/b.db") == "sqlite:///a/b.db"
    assert mask_password("failed for secret", "mysql://u:secret@h/d") == "failed for ***"


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_trials_of_dead_processes_on_this_host_are_failed_and_retried(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(url, "search", **IDENTITY)
    owners = {"dead": (HOST, dead_pid()), "alive": (HOST, os.getpid()), "elsewhere": ("other-host", dead_pid())}
    for name, (host, pid) in owners.items():
        trial = study.ask()
        trial.suggest_categorical("hidden", [16, 32, 48])
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", pid)
        trial.set_user_attr("owner", name)
    interrupted = study.trials[0].params

    reopened = open_study(url, "search", **IDENTITY)
    states = {t.user_attrs.get("owner", "retry"): t for t in reopened.trials}
    assert states["dead"].state == TrialState.FAIL and states["dead"].user_attrs["error"].startswith("interrupted")
    assert states["alive"].state == states["elsewhere"].state == TrialState.RUNNING
    assert states["retry"].state == TrialState.WAITING and len(reopened.trials) == 4
    assert reopened.ask().suggest_categorical("hidden", [16, 32, 48]) == interrupted["hidden"]  # the retry comes first
    open_study(url, "search", **IDENTITY)  # nothing more to recover
    assert len(optuna.load_study(study_name="search", storage=url).trials) == 4


def test_budget_of_the_study_is_the_cost_models(tmp_path):
    result = search(tmp_path, budget=BUDGET, trials=1)
    assert result.study.user_attrs["budget"] == BUDGET.model_dump(mode="json") | {"latency_from": {"mode": "measured"}}
    assert result.study.user_attrs["objectives"] == ["score", "params"]
    assert result.study.user_attrs["space"] == space().digest()


def test_a_trial_whose_heartbeat_stopped_is_failed_and_retried_by_another_worker(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(url, "search", **IDENTITY, heartbeat=1)
    trial = study.ask()  # a worker on another machine, killed mid-trial: its pid says nothing here
    trial.suggest_categorical("hidden", [16, 32, 48])
    trial.set_user_attr("host", "other-host")
    beats = Heartbeat(study, 1)
    beats.start(trial._trial_id)
    time.sleep(2.5)
    assert recover_stale_trials(study) == []  # beating: alive
    beats.close()  # the worker dies; no beats for the grace period of GRACE heartbeats
    time.sleep(GRACE + 1.5)
    assert recover_stale_trials(study) == [trial.number]
    trials = optuna.load_study(study_name="search", storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].user_attrs == {"retry_of": 0, "retries": 1}
    assert recover_stale_trials(study) == []  # failed once, retried once
    assert study.ask().suggest_categorical("hidden", [16, 32, 48]) == trials[0].params["hidden"]


def test_retries_stop_after_max_retries(tmp_path):
    study = open_study(f"sqlite:///{tmp_path / 'study.db'}", "search", **IDENTITY)
    attrs: dict = {}
    for _ in range(MAX_RETRIES + 1):
        trial = study.ask()
        trial.suggest_categorical("hidden", [16, 32])
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        frozen = study.tell(trial, state=TrialState.FAIL)
        retry(study, frozen)
        waiting = study.get_trials(states=(TrialState.WAITING,))
        if not waiting:
            break
        attrs = waiting[0].user_attrs
        study.ask()  # take the retry
    assert attrs["retries"] == MAX_RETRIES and not study.get_trials(states=(TrialState.WAITING,))


def test_a_study_that_its_creator_is_still_labelling_is_read_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    created = optuna.create_study(storage=url, study_name="search", directions=["maximize", "minimize"])

    def label() -> None:  # the creating worker writes the identity records one by one
        for key, value in IDENTITY.items():
            time.sleep(0.2)
            created.set_user_attr({"space_digest": "space"}.get(key, key), value)

    thread = threading.Thread(target=label)
    thread.start()
    study = open_study(url, "search", **IDENTITY)
    thread.join()
    assert study.user_attrs["teacher"] == "t1"


def test_workers_claiming_one_number_at_the_same_moment_leave_exactly_one_running(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    open_study(url, "search", **IDENTITY)
    studies = [optuna.load_study(study_name="search", storage=url) for _ in range(2)]
    start, claims = threading.Barrier(2), [None, None]

    def claim(k: int) -> None:
        start.wait()
        try:
            claims[k] = WorkerClaim(studies[k], 3, 10)
        except ConfigError as exc:
            claims[k] = exc

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    running = [c for c in claims if isinstance(c, WorkerClaim)]
    for c in running:
        c.renew()  # both may have found the number free: the next renewal tells them apart
    assert sum(c.lost is None for c in running) == 1, claims
    refused = [c for c in claims if isinstance(c, ConfigError)] + [c.lost for c in running if c.lost]
    assert len(refused) == 1 and str(refused[0]).startswith("worker 3 ")


@pytest.mark.parametrize(
    "held",
    [
        {"released": True},
        {"pid": "dead"},  # a process of this host that is gone
        {"host": "other-host", "seen": time.time() - GRACE * 10 - 1},  # not renewed for GRACE heartbeats
    ],
)
def test_a_lapsed_claim_frees_its_number(tmp_path, held):
    study = open_study(f"sqlite:///{tmp_path / 'study.db'}", "search", **IDENTITY)
    claim = {
        "token": "old",
        "host": HOST,
        "pid": os.getpid(),
        "seen": time.time(),
        "heartbeat": 10,
        "released": False,
    } | held
    study.set_user_attr("worker:0", claim | ({"pid": dead_pid()} if held.get("pid") == "dead" else {}))
    mine = WorkerClaim(study, 0, 10)
    assert study.user_attrs["worker:0"]["token"] == mine.token
    mine.release()
    assert study.user_attrs["worker:0"]["released"]
