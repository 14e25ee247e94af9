"""`bertsmith search`: a real (tiny) search end to end, resumed by rerunning, and one-line errors
with exit code 2 that leave the study's trials untouched."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from tests.test_cli import run

from .test_supernet import SPACE


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE | {"budget": {"params": 30000}}), encoding="utf-8")
    return path


def _search(monkeypatch, capsys, space_file, teacher_dir, task_file, cache_dir, out, *extra):
    return run(
        monkeypatch,
        capsys,
        "search",
        "--space",
        str(space_file),
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--out",
        str(out),
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
        "--strategy",
        "random",
        "--quiet",
        *extra,
    )


def _trials(out):
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    return [(t.number, t.state, t.values) for t in study.trials]


def test_search_writes_the_front_and_resumes(
    monkeypatch, capsys, tmp_path, space_file, teacher_dir, task_file, cache_dir
):
    out = tmp_path / "run"
    code, stdout, err = _search(monkeypatch, capsys, space_file, teacher_dir, task_file, cache_dir, out)
    assert code == 0, err
    assert "5 architectures evaluated" in stdout and "Pareto front" in stdout
    front = json.loads((out / "pareto.json").read_text())
    assert front and all(p["costs"]["params"] <= 30000 for p in front)
    assert (out / "supernet" / "supernet.safetensors").exists() and (out / "trials.csv").exists()
    assert json.loads((out / "search.json").read_text())["budget"]["params"] == 30000
    before = _trials(out)
    code, stdout, _ = _search(monkeypatch, capsys, space_file, teacher_dir, task_file, cache_dir, out)
    assert code == 0 and _trials(out) == before  # nothing left to do: no new trial, nothing re-evaluated
    code, stdout, _ = _search(monkeypatch, capsys, space_file, teacher_dir, task_file, cache_dir, out, "--trials", "7")
    assert code == 0 and "7 architectures evaluated" in stdout and _trials(out)[: len(before)] == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--budget", "params=5 parsecs"), "--budget 'params=5 parsecs'"),
        (("--budget", "params=10"), "no architecture in the space fits the budget"),
        (("--strategy", "annealing"), "strategy 'annealing': unknown"),
        (("--evaluator", "oracle"), "--evaluator 'oracle'"),
        (("--objectives", "params,joules"), "objectives ['params', 'joules']"),
        (("--storage", "postgresql://me:hunter2@127.0.0.1:1/db"), "cannot open the study storage postgresql://me:***@"),
        (("--time-budget", "soon"), "--time-budget 'soon'"),
        (("--storage", "sqlite:///:memory:"), "--storage sqlite:///:memory:: an in-memory database cannot be shared"),
        (("--storage", "sqlite://"), "use a file such as sqlite:///study.db, or omit --storage"),
        (("--max-length", "100"), "--max-length 100 is more than the 64 positions of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    monkeypatch, capsys, tmp_path, space_file, teacher_dir, task_file, cache_dir, extra, message
):
    code, _, err = _search(monkeypatch, capsys, space_file, teacher_dir, task_file, cache_dir, tmp_path / "run", *extra)
    assert code == 2 and message in err and "hunter2" not in err and len(err.strip().splitlines()) == 1


def test_a_study_of_another_space_is_refused_untouched(
    monkeypatch, capsys, tmp_path, space_file, teacher_dir, task_file, cache_dir
):
    out = tmp_path / "run"
    assert (
        _search(
            monkeypatch,
            capsys,
            space_file,
            teacher_dir,
            task_file,
            cache_dir,
            out,
            "--evaluator",
            "short",
            "--eval-steps",
            "2",
            "--trials",
            "2",
        )[0]
        == 0
    )
    before, settings = _trials(out), (out / "search.json").read_text()
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(SPACE | {"depth": [1, 2]}), encoding="utf-8")
    code, _, err = _search(
        monkeypatch,
        capsys,
        other,
        teacher_dir,
        task_file,
        cache_dir,
        out,
        "--evaluator",
        "short",
        "--eval-steps",
        "2",
        "--trials",
        "2",
    )
    assert code == 2 and "was created with a different search space" in err
    assert _trials(out) == before and (out / "search.json").read_text() == settings


def test_unknown_dimension_in_the_space(monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(SPACE | {"width": [3]}), encoding="utf-8")
    code, _, err = _search(monkeypatch, capsys, bad, teacher_dir, task_file, cache_dir, tmp_path / "run")
    assert code == 2 and "width" in err and str(bad) in err


def test_latency_objective_measured_or_predicted(
    monkeypatch, capsys, tmp_path, space_file, teacher_dir, task_file, cache_dir
):
    for mode in ("measured", "predicted"):
        out = tmp_path / mode
        code, stdout, err = _search(
            monkeypatch,
            capsys,
            space_file,
            teacher_dir,
            task_file,
            cache_dir,
            out,
            "--objectives",
            "params,latency",
            "--latency",
            mode,
            "--budget",
            "seq_len=16",
            "--trials",
            "3",
        )
        assert code == 0, err
        front = json.loads((out / "pareto.json").read_text())
        assert all(p["costs"]["latency"] > 0 for p in front)
        assert (out / "latency_predictor.json").exists() == (mode == "predicted")
    calibration = json.loads((tmp_path / "predicted" / "latency_predictor.json").read_text())
    assert calibration["measured"] == 30 and calibration["seq_len"] == 16 and calibration["held_out_mape"] >= 0
