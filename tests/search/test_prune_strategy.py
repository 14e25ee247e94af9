"""The `prune` strategy end to end on the tiny teacher: rounds that step down to the budget and never
above it, the pruning path and the study, the baselines at the budget with the same steps, resume,
and bad input refused with exit 2 before anything is written."""

from __future__ import annotations

import json

import optuna
import pytest

from bertsmith.arch import ArchSpec
from bertsmith.cost import encoder_params
from bertsmith.data import resolve_task
from bertsmith.distill.task import evaluate, load_task_data, load_tokenizer
from bertsmith.distill.teacher import load_teacher
from bertsmith.search.evaluators import DistillEvaluator
from bertsmith.search.job import SearchSettings, run_search_job, shapes_below
from bertsmith.search.pruning import cost_function
from bertsmith.baselines import layers_within, uniform_within
from tests.tasks import tiny_spec
from tests.test_cli import run

from .settings import search_settings

BUDGET = 40_272  # the tiny teacher's first two layers and pooler (it has three layers, 59,232)


def _prune(monkeypatch, capsys, teacher_dir, task_file, cache_dir, out, *extra):
    return run(
        monkeypatch,
        capsys,
        "search",
        "--strategy",
        "prune",
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
        "--batch-size",
        "16",
        "--eval-steps",
        "3",
        "--gate-steps",
        "3",
        "--prune-rounds",
        "2",
        "--budget",
        f"params={BUDGET}",
        "--quiet",
        *extra,
    )


def _trials(out):
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    return study.trials


def _settings(teacher_dir, task_file, cache_dir, out, **changes) -> SearchSettings:
    return search_settings(
        space=None,
        teacher=teacher_dir,
        task=str(task_file),
        run_dir=out,
        strategy="prune",
        budget=f"params={BUDGET}",
        eval_steps=3,
        gate_steps=3,
        prune_rounds=2,
        max_length=16,
        batch_size=16,
        cache_dir=cache_dir,
        progress=False,
        **changes,
    )


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, teacher_dir, task_file, cache_dir):
    """One pruning run (two rounds and both baselines), shared by the tests that read it."""
    out = tmp_path_factory.mktemp("prune") / "run"
    run_search_job(_settings(teacher_dir, task_file, cache_dir, out))
    return out


def test_rounds_step_down_to_the_budget_and_keep_every_layer(pruned, teacher_dir):
    path = json.loads((pruned / "prune" / "path.json").read_text())
    teacher = ArchSpec.from_dict(path[0]["spec"])
    assert [row["round"] for row in path] == [0, 1, 2] and teacher.num_layers == 3
    costs = [row["cost"] for row in path]
    assert costs[0] == 59_232 and costs[0] > costs[1] > costs[2] and costs[2] <= BUDGET
    assert costs[1] <= path[1]["target"] == pytest.approx(59_232 - (59_232 - BUDGET) / 2)
    for row in path[1:]:
        spec = ArchSpec.from_dict(row["spec"])
        assert spec.num_layers == 3 and encoder_params(spec) == row["cost"]  # tall and narrow: no layer dropped
        assert set(row["alpha"]) == {"h", *(f"{d}{i}" for d in "akvf" for i in range(3))}
        assert row["steps"] == 3 and "accuracy" in row["metrics"] and "accuracy" in row["gated_metrics"]
    lines = (pruned / "prune" / "path.csv").read_text().splitlines()
    assert lines[0].startswith("round,cost,accuracy,hidden,layer,heads") and len(lines) == 1 + 3 * 3


def test_every_round_and_baseline_is_in_the_study(pruned):
    trials = _trials(pruned)
    rounds = {t.user_attrs["prune_round"]: t for t in trials if "prune_round" in t.user_attrs}
    baselines = {t.user_attrs["baseline"]: t for t in trials if "baseline" in t.user_attrs}
    assert set(rounds) == {1, 2} and set(baselines) == {"uniform", "layers"} and len(trials) == 4
    assert not rounds[1].user_attrs["feasible"] and rounds[1].values[0] == float("-inf")  # above the budget
    assert rounds[1].user_attrs["metrics"]["accuracy"] >= 0  # ... but its metrics are kept for the path
    assert rounds[2].user_attrs["feasible"] and rounds[2].values[0] == rounds[2].user_attrs["metrics"]["accuracy"]
    layers = ArchSpec.from_dict(baselines["layers"].user_attrs["spec"])
    uniform = ArchSpec.from_dict(baselines["uniform"].user_attrs["spec"])
    assert layers.num_layers == 2 and encoder_params(layers) == BUDGET
    assert uniform.num_layers == 3 and encoder_params(uniform) <= BUDGET
    # the same distillation steps: the baselines get all the rounds' re-training steps
    assert all(t.user_attrs["details"]["steps"] == 2 * 3 for t in baselines.values())
    front = json.loads((pruned / "pareto.json").read_text())
    assert {p["trial"] for p in front} <= {rounds[2].number, *(t.number for t in baselines.values())}


def test_saved_round_model_is_the_recorded_one(pruned, teacher_dir, task_file, cache_dir):
    task = resolve_task(task_file)
    model = load_teacher(pruned / "prune" / "round-2" / "model", task)
    data = load_task_data(
        task, load_tokenizer(teacher_dir, model.encoder.spec, 16), data_dir=None, max_length=16, cache_dir=cache_dir
    )
    info = json.loads((pruned / "prune" / "round-2" / "round.json").read_text())
    assert model.encoder.spec.to_dict() == info["spec"]
    assert evaluate(model, data, "dev") == pytest.approx(info["metrics"])


def test_rerun_resumes_and_other_settings_are_refused(pruned, monkeypatch, capsys, teacher_dir, task_file, cache_dir):
    before = [(t.number, t.values) for t in _trials(pruned)]
    code, stdout, err = _prune(monkeypatch, capsys, teacher_dir, task_file, cache_dir, pruned)
    assert code == 0, err
    assert [(t.number, t.values) for t in _trials(pruned)] == before and "Pruning path" in stdout
    code, _, err = _prune(monkeypatch, capsys, teacher_dir, task_file, cache_dir, pruned, "--gamma", "3")
    assert code == 2 and "other settings (gamma: 1.0 -> 3.0)" in err
    assert [(t.number, t.values) for t in _trials(pruned)] == before


def test_a_killed_run_resumes_at_its_unfinished_round(pruned, tmp_path, monkeypatch, teacher_dir, task_file, cache_dir):
    """Killed during round 2's re-training: the rerun keeps round 1 (recorded once), resumes round
    2's trained gates from their checkpoint, and ends where an uninterrupted run ends."""
    out = tmp_path / "run"
    real = DistillEvaluator.distill
    calls = []

    def killed_in_round_2(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(DistillEvaluator, "distill", killed_in_round_2)
        with pytest.raises(KeyboardInterrupt):
            run_search_job(_settings(teacher_dir, task_file, cache_dir, out))
    assert [t.user_attrs["prune_round"] for t in _trials(out)] == [1]
    assert (out / "prune" / "round-2" / "gates" / "train.json").exists()
    run_search_job(_settings(teacher_dir, task_file, cache_dir, out))
    assert sorted(t.user_attrs.get("prune_round", 0) for t in _trials(out)) == [0, 0, 1, 2]  # + two baselines
    for r in (1, 2):
        again = json.loads((out / "prune" / f"round-{r}" / "round.json").read_text())
        clean = json.loads((pruned / "prune" / f"round-{r}" / "round.json").read_text())
        assert again["spec"] == clean["spec"] and again["metrics"] == clean["metrics"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--budget", "params=60000"), "is not below the teacher's 59,232: there is nothing to prune"),
        (("--budget", "params=10"), "is below the smallest model that pruning h,a,k,v,f can reach"),
        (("--prune-rounds", "0"), "rounds = 0: at least 1"),
        (("--prune-dims", "x"), "dims = 'x'"),
        (("--ranking", "loudest"), "ranking = 'loudest'"),
        (("--evaluator", "slice"), "use --evaluator short"),
        (("--budget", "seq_len=64"), "set a params bound"),
        (("--prune-cost", "latency", "--budget", "params=40000,latency=1ms"), "needs --latency predicted"),
    ],
)
def test_bad_input_exits_2_and_leaves_the_run_alone(
    pruned, monkeypatch, capsys, teacher_dir, task_file, cache_dir, extra, message
):
    before = [(t.number, t.values) for t in _trials(pruned)]
    settings = (pruned / "search.json").read_text()
    code, _, err = _prune(monkeypatch, capsys, teacher_dir, task_file, cache_dir, pruned, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert [(t.number, t.values) for t in _trials(pruned)] == before
    assert (pruned / "search.json").read_text() == settings


def test_a_teacher_that_cannot_be_imported(tmp_path, monkeypatch, capsys, task_file, cache_dir):
    broken = tmp_path / "teacher"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    code, _, err = _prune(monkeypatch, capsys, broken, task_file, cache_dir, tmp_path / "run")
    assert code == 2 and str(broken) in err and not (tmp_path / "run").exists()


def test_a_space_is_not_taken(tmp_path, monkeypatch, capsys, teacher_dir, task_file, cache_dir):
    code, _, err = _prune(
        monkeypatch,
        capsys,
        teacher_dir,
        task_file,
        cache_dir,
        tmp_path / "run",
        "--space",
        str(tmp_path / "space.yaml"),
    )
    assert code == 2 and "prunes the teacher's own architecture" in err


def test_uniform_baseline_is_the_largest_uniform_shrink_within_the_budget():
    spec = tiny_spec(layers=3, hidden=48)
    cost = cost_function("params")
    for target in (40_000, 20_000, 5_000):
        uniform = uniform_within(spec, cost, target)
        assert cost(uniform) <= target
        layer = uniform.layers[0]
        assert all(la == layer for la in uniform.layers)
        grown = uniform.replace(hidden=uniform.hidden + 1)
        assert uniform.hidden < 48 and layer.ffn.size < 96
        assert cost(grown) > cost(uniform)
    assert layers_within(spec, cost, 40_272).num_layers == 2 and layers_within(spec, cost, 40_271).num_layers == 1
    assert layers_within(spec, cost, 100) is None


def test_latency_is_calibrated_over_the_shapes_pruning_passes_through():
    spec = tiny_spec(layers=3, hidden=48)
    shapes = shapes_below(spec)
    assert shapes.extreme(True).to_dict() == spec.to_dict()
    smallest_shape = shapes.extreme(False)
    assert smallest_shape.num_layers == 1 and smallest_shape.hidden == 6 and smallest_shape.layers[0].ffn.size == 12
