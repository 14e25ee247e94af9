"""A strategy is one class plus a registry entry: a toy strategy from a test module, with an option of
its own, runs through `bertsmith search` and `bertsmith run`, its option reaches it, and a bad value
of it is a one-line error with exit 2."""

from __future__ import annotations

import optuna
import pytest
import yaml

from bertsmith.search.strategies import STRATEGIES
from tests.test_cli import run
from tests.test_pipeline import tiny_config

from .test_supernet import SPACE
from .toy_strategy import Toy


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(STRATEGIES, Toy.name, Toy)


def _tags(study_db):
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{study_db}")
    return [t.user_attrs.get("toy_tag") for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def _search(monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir, *extra):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE | {"budget": {"params": 30000}}), encoding="utf-8")
    return run(
        monkeypatch,
        capsys,
        "search",
        "--strategy",
        "toy",
        "--space",
        str(space),
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--out",
        str(tmp_path / "run"),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--supernet-steps",
        "4",
        "--batch-size",
        "16",
        "--trials",
        "5",
        "--quiet",
        *extra,
    )


def test_bertsmith_search_runs_a_registered_strategy_with_its_option(
    toy, monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir
):
    code, out, err = _search(
        monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir, "--option", "picks=3", "--option", "tag=hello"
    )
    assert code == 0, err
    assert "3 architectures evaluated" in out and "toy: " in out and " trials tagged hello" in out
    tags = _tags(tmp_path / "run" / "study.db")
    assert tags and set(tags) == {"hello"}


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--option", "picks=0"), "toy: picks = 0: Input should be greater than or equal to 1"),
        (("--option", "picks=many"), "toy: picks = 'many': Input should be a valid integer"),
        (("--option", "colour=red"), "strategy 'toy': unknown option 'colour' (known: picks, tag)"),
        (("--option", "picks"), "--option 'picks': expected KEY=VALUE"),
        (("--population-size", "4"), "strategy 'toy': unknown option 'population_size'"),
    ],
)
def test_a_bad_option_of_the_strategy_is_one_line_and_exit_2(
    toy, monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir, extra, message
):
    code, _, err = _search(monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_bertsmith_run_runs_a_registered_strategy_with_its_option(
    toy, monkeypatch, capsys, tmp_path, base_dir, task_file, cache_dir
):
    config = tiny_config(
        tmp_path,
        base_dir,
        task_file,
        **{
            "search.strategy": "toy",
            "search.objectives": ["params"],
            "search.options": {"batch_size": 16, "picks": 2, "tag": "from-the-config"},
            "finalists": {"count": 1, "steps": 4, "batch_size": 16, "baselines": []},
            "export": {"onnx": False, "seq_len": 16},
        },
    )
    code, _, err = run(
        monkeypatch,
        capsys,
        "run",
        str(config),
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(cache_dir),
        "--quiet",
        "--accept-weak",
    )
    assert code == 0, err
    assert _tags(tmp_path / "out" / "search" / "study.db") == ["from-the-config"] * 2


@pytest.mark.parametrize(
    "options, message",
    [
        ({"picks": 0}, r"search.options.picks = 0: Input should be greater than or equal to 1"),
        (
            {"colour": "red"},
            r"search.options.colour: not an option of the search or of the toy strategy \(known: .*picks",
        ),
    ],
)
def test_bertsmith_run_refuses_a_bad_option_of_the_strategy(
    toy, monkeypatch, capsys, tmp_path, base_dir, task_file, options, message
):
    config = tiny_config(tmp_path, base_dir, task_file, **{"search.strategy": "toy", "search.options": options})
    code, _, err = run(monkeypatch, capsys, "run", str(config), "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()
