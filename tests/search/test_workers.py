"""Search workers sharing one study in a real PostgreSQL server (started on loopback by the fixture):
two concurrent `bertsmith search` processes finish exactly the requested trials without evaluating
an architecture twice, a worker killed with SIGKILL mid-trial has that trial retried by the other, the
Pareto front read back from the database is the one the workers wrote, a supernet directory that the
workers share is trained once, and bad input (wrong password, unreachable server, another space,
another teacher) exits 2 with the study untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from bertsmith.search.pareto import pareto_front, points

from ..postgres import postgres_server
from ..test_cli import run

SPACE = """depth: [1, 2, 3]
hidden: [16, 32, 48]
layer: {heads: [1, 2, 4], qk_dim: [12], v_dim: [12], ffn: [32, 64, 96]}
embeddings: {vocab_size: 30522, max_positions: 64, type_vocab_size: 2}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with postgres_server(tmp_path_factory.mktemp("postgres")) as running:
        yield running


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(SPACE)
    return path


def arguments(
    space_file: Path,
    teacher: Path,
    task: Path,
    url: str,
    study: str,
    run_dir: Path,
    *,
    trials: int,
    steps: int,
    worker: int = 0,
    evaluator: str = "short",
) -> list[str]:
    return [
        "search",
        "--space",
        str(space_file),
        "--teacher",
        str(teacher),
        "--task",
        str(task),
        "--strategy",
        "nsga2",
        "--population-size",
        "4",
        "--evaluator",
        evaluator,
        "--eval-steps",
        str(steps),
        "--trials",
        str(trials),
        "--storage",
        url,
        "--study-name",
        study,
        "--out",
        str(run_dir),
        "--worker",
        str(worker),
        "--heartbeat",
        "1",
        "--batch-size",
        "16",
        "--max-length",
        "16",
        "--quiet",
    ]


def start(args: list[str]) -> subprocess.Popen:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bertsmith.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(worker: subprocess.Popen, timeout: float = 300) -> str:
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err[-3000:]
    return out


def evaluated(study: optuna.Study) -> list:
    return [
        t
        for t in study.get_trials()
        if t.state == TrialState.COMPLETE
        and t.user_attrs["feasible"]
        and t.user_attrs.get("duplicate_of") is None
        and t.user_attrs.get("recorded") is None
    ]


def spec_key(trial) -> str:
    return json.dumps(trial.user_attrs["spec"], sort_keys=True)


def test_two_workers_finish_the_trials_once_each_and_the_front_is_the_databases(
    server, space_file, teacher_dir, task_file, tmp_path
):
    url, run_dir = server.url(), tmp_path / "run"  # one run directory, as on shared storage
    workers = [
        start(arguments(space_file, teacher_dir, task_file, url, "two", run_dir, trials=8, steps=4, worker=k))
        for k in (0, 1)
    ]
    outputs = [finish(w) for w in workers]
    study = optuna.load_study(study_name="two", storage=url)
    done = evaluated(study)
    assert len(done) == 8  # exactly the requested number, not one per worker more
    assert max(Counter(spec_key(t) for t in done).values()) == 1  # no architecture evaluated twice
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both workers evaluated
    assert {t.user_attrs["worker"] for t in done} == {0, 1}
    front = [(p.number, list(p.values)) for p in pareto_front(points(study.get_trials()))]
    written = json.loads((run_dir / "pareto.json").read_text())
    assert [(p["trial"], [p["value"], p["costs"]["params"]]) for p in written] == front
    assert all("8 architectures evaluated" in out for out in outputs)


def test_a_worker_killed_mid_trial_has_its_trial_retried(server, space_file, teacher_dir, task_file, tmp_path):
    url = server.url()
    survivor = start(arguments(space_file, teacher_dir, task_file, url, "kill", tmp_path / "a", trials=5, steps=40))
    victim = start(
        arguments(space_file, teacher_dir, task_file, url, "kill", tmp_path / "b", trials=5, steps=40, worker=1)
    )
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            study = optuna.load_study(study_name="kill", storage=url)
        except KeyError:  # not created yet
            continue
        mid = [
            t
            for t in study.get_trials(states=(TrialState.RUNNING,))
            if t.user_attrs.get("pid") == victim.pid and "spec" in t.user_attrs
        ]
        if mid:
            os.kill(victim.pid, signal.SIGKILL)
            killed = mid[0]
    assert killed is not None, "the second worker never started a trial"
    victim.wait()
    finish(survivor)
    trials = {t.number: t for t in optuna.load_study(study_name="kill", storage=url).get_trials()}
    assert trials[killed.number].state == TrialState.FAIL
    retried = [t for t in trials.values() if t.user_attrs.get("retry_of") == killed.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == killed.params and retried[0].user_attrs["pid"] == survivor.pid
    done = evaluated(optuna.load_study(study_name="kill", storage=url))
    assert len(done) == 5 and max(Counter(spec_key(t) for t in done).values()) == 1


def test_workers_sharing_a_supernet_directory_train_it_once(server, space_file, teacher_dir, task_file, tmp_path):
    supernet = tmp_path / "shared" / "supernet"
    workers = [
        start(
            arguments(
                space_file,
                teacher_dir,
                task_file,
                server.url(),
                "shared",
                tmp_path / f"run{k}",
                trials=3,
                steps=1,
                worker=k,
                evaluator="slice",
            )
            + ["--supernet", str(supernet), "--supernet-steps", "10"]
        )
        for k in (0, 1)
    ]
    for w in workers:
        finish(w)
    log = [json.loads(line) for line in (supernet / "training" / "metrics.jsonl").read_text().splitlines()]
    # one training, not two interleaved (a short supernet is evaluated once, at its end)
    assert [r["step"] for r in log if "eval" in r] == [10]
    assert json.loads((supernet / "supernet.json").read_text())["steps"] == 10
    assert not (supernet / ".lock").exists() and not (tmp_path / "run0" / "supernet").exists()


def snapshot(url: str, name: str) -> list:
    return [
        (t.number, t.state, t.values, t.user_attrs)
        for t in optuna.load_study(study_name=name, storage=url).get_trials()
    ]


def test_bad_input_exits_2_with_the_study_untouched(
    monkeypatch, capsys, server, space_file, teacher_dir, task_file, base_dir, tmp_path
):
    url = server.url()
    args = arguments(space_file, teacher_dir, task_file, url, "bad", tmp_path / "run", trials=2, steps=2)
    assert run(monkeypatch, capsys, *args)[0] == 0
    before = snapshot(url, "bad")

    def refused(*changed: str) -> str:
        code, _, err = run(monkeypatch, capsys, *changed)
        assert code == 2 and err.count("\n") == 1, err
        return err

    wrong = refused(*[server.url(password="wrong") if a == url else a for a in args])
    assert "password authentication failed" in wrong and ":wrong@" not in wrong
    assert "cannot open the study storage postgresql+psycopg2://bertsmith:***@127.0.0.1" in wrong
    closed = server.url(port=server.port + 1 if server.port < 65535 else server.port - 1)
    assert "cannot open the study storage" in refused(*[closed if a == url else a for a in args])
    other_space = tmp_path / "other.yaml"
    other_space.write_text(SPACE.replace("depth: [1, 2, 3]", "depth: [1, 2]"))
    assert "was created with a different search space" in refused(
        *[str(other_space) if a == str(space_file) else a for a in args]
    )
    other_teacher = tmp_path / "teacher"
    other_teacher.mkdir()
    for f in teacher_dir.iterdir():
        (other_teacher / f.name).write_bytes(f.read_bytes())
    config = json.loads((teacher_dir / "config.json").read_text()) | {"note": "another teacher"}
    (other_teacher / "config.json").write_text(json.dumps(config))
    assert "was created with a different teacher" in refused(
        *[str(other_teacher) if a == str(teacher_dir) else a for a in args]
    )
    assert snapshot(url, "bad") == before


def test_workers_opening_a_new_database_at_once_all_get_the_study(server):
    from bertsmith.search.study import open_study

    identity = {
        "space_digest": "s",
        "teacher": "t",
        "evaluator": {"kind": "fake"},
        "objectives": ["score", "params"],
        "budget": {},
    }
    for round_ in range(4):
        server.create_database(f"fresh{round_}")
        url, errors, barrier = server.url(f"fresh{round_}"), [], threading.Barrier(3)

        def open_() -> None:
            barrier.wait()
            try:
                open_study(url, "race", **identity)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=open_) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert optuna.load_study(study_name="race", storage=url).user_attrs["teacher"] == "t"
