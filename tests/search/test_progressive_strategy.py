"""The `progressive` strategy (EfficientBERT): the automatic backbone and the baselines, the fitness
model, the three stages end to end on the tiny teacher (frozen choices, window, deduplication, the
learned model, files, resume) and bad input."""

from __future__ import annotations

import json

import pytest

from bertsmith import presets
from bertsmith.arch import ArchSpec
from bertsmith.cost import encoder_params
from bertsmith.errors import ConfigError
from bertsmith.hf import import_checkpoint
from bertsmith.search.ffn_supernet import LayerFFN, layout_spec
from bertsmith.search.job import SearchSettings, run_search_job
from bertsmith.search.strategies.progressive import Scored, auto_backbone, dense_at, fitness_model, layout_key
from tests.tasks import tiny_spec
from tests.test_cli import run

from .settings import search_settings

BACKBONE = ArchSpec.uniform(layers=2, hidden=24, heads=3, ffn=24, embeddings=tiny_spec().embeddings)


def _settings(teacher_dir, task_file, cache_dir, out, **changes) -> SearchSettings:
    settings = dict(
        space=None,
        teacher=teacher_dir,
        task=str(task_file),
        run_dir=out,
        strategy="progressive",
        budget="params=20000",
        stage_trials="3,3,3",
        warmup_steps=4,
        eval_steps=3,
        init_samples=2,
        proposals=8,
        max_length=16,
        batch_size=16,
        cache_dir=cache_dir,
        progress=False,
    )
    return search_settings(**settings | changes)


def test_backbone_dense_and_transplant_hit_their_parameter_targets():
    teacher = presets.get("minilm-l6")
    budget = encoder_params(teacher) / 4
    backbone = auto_backbone(teacher, budget, 0.65)
    assert backbone.num_layers == 6 and backbone.hidden == 256 and backbone.layers[0].attention.qk_dim == 32
    target = 2_500_000
    dense = dense_at(backbone, target)
    assert abs(encoder_params(dense) - target) <= 3 * 256 * 6  # one FFN neuron per layer either way
    efficient = presets.transplant_efficientbert(backbone, target)
    assert abs(encoder_params(efficient) - target) / target < 0.01
    ffns = [la.ffn for la in efficient.layers]
    assert [f.expression for f in ffns] == [e for e, _, _ in presets.EFFICIENTBERT_FFNS]
    assert [f.stack for f in ffns] == [s for _, s, _ in presets.EFFICIENTBERT_FFNS]
    assert abs(ffns[1].size - 2 * ffns[0].size) <= 1  # the published 540 : 270 kept (up to rounding)


def test_the_fitness_model_ranks_children_like_the_results_it_was_fit_on():
    good, bad = "tanh(L(gelu(L(x))))", "L(relu(mul(L(x), x)))"
    results = [Scored((LayerFFN(good, s, r),), 0.9, 0) for s in (1, 2, 3) for r in (1, 2)] + [
        Scored((LayerFFN(bad, s, r),), 0.1, 0) for s in (1, 2, 3) for r in (1, 2)
    ]
    scores = fitness_model(results, [(LayerFFN(good, 4, 3),), (LayerFFN(bad, 4, 3),)], seed=0)
    assert scores[0] > 0.5 > scores[1]


@pytest.fixture(scope="module")
def progressed(tmp_path_factory, teacher_dir, task_file, cache_dir):
    out = tmp_path_factory.mktemp("progressive") / "run"
    result = run_search_job(_settings(teacher_dir, task_file, cache_dir, out))
    return out, result


def test_three_stages_freeze_what_they_should_and_stay_in_the_window(progressed):
    out, result = progressed
    info = json.loads((out / "progressive" / "result.json").read_text())
    assert [s["stage"] for s in info["stages"]] == [1, 2, 3] and result.evaluated == 9
    lo, hi = info["window"]
    trials = [t for t in result.study.trials if "stage" in t.user_attrs]
    by_stage = {
        k: [tuple(LayerFFN(**f) for f in t.user_attrs["layout"]) for t in trials if t.user_attrs["stage"] == k]
        for k in (1, 2, 3)
    }
    for t in trials:
        assert lo <= t.user_attrs["costs"]["params"] <= hi
    best1 = tuple(LayerFFN(**f) for f in info["stages"][0]["best"]["layout"])
    best2 = tuple(LayerFFN(**f) for f in info["stages"][1]["best"]["layout"])
    assert all([(f.stack, f.ratio) for f in lay] == [(f.stack, f.ratio) for f in best1] for lay in by_stage[2])
    assert all([f.expression for f in lay] == [f.expression for f in best2] for lay in by_stage[3])
    assert by_stage[2][0] == best1 and by_stage[3][0] == best2  # each stage starts from the last one's best
    how = [t.user_attrs["proposed_by"] for t in trials]
    assert how.count("seed") >= 3 and any(h.startswith("fitness model") for h in how)
    for stage in by_stage.values():  # no two candidates of a stage compute the same function
        assert len({layout_key(lay) for lay in stage}) == len(stage)
    for k in (1, 2, 3):
        assert info["stages"][k - 1]["warmup"]["steps"] == 4
        assert (out / "progressive" / f"stage{k}" / "supernet.safetensors").exists()


def test_fitness_is_measured_on_a_split_carved_from_train_and_the_files_compare_at_one_size(progressed):
    out, result = progressed
    settings = json.loads((out / "search.json").read_text())
    assert settings["init"] == "warm"
    evaluator = (
        json.loads(result.study.user_attrs["evaluator"])
        if isinstance(result.study.user_attrs.get("evaluator"), str)
        else result.study.user_attrs.get("evaluator")
    )
    assert evaluator["split"] == "validation" and evaluator["init"] == "warm"
    info = json.loads((out / "progressive" / "result.json").read_text())
    best = ArchSpec.load(out / "progressive" / "best.yaml")
    dense = ArchSpec.load(out / "progressive" / "dense.yaml")
    efficient = ArchSpec.load(out / "progressive" / "efficientbert.yaml")
    assert encoder_params(best) == info["best"]["params"]
    assert all(la.ffn.kind == "dense" for la in dense.layers) and dense.hidden == best.hidden
    assert abs(encoder_params(dense) - encoder_params(best)) <= 3 * best.hidden * best.num_layers
    assert abs(encoder_params(efficient) - encoder_params(best)) / encoder_params(best) < 0.05


def test_a_rerun_evaluates_nothing_again(progressed, teacher_dir, task_file, cache_dir):
    out, first = progressed
    again = run_search_job(_settings(teacher_dir, task_file, cache_dir, out))
    assert again.evaluated == 9 and len(again.study.trials) == len(first.study.trials)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"budget": "params=2000"}, r"even one attention head of the teacher's size \(12\) per layer takes more"),
        ({"window": 1.0}, r"progressive: window = 1.0: expected a share"),
        ({"seeds": "L(L(x))"}, r"seeds = 'L\(L\(x\)\)': FFN expression 'L\(L\(x\)\)'"),
        ({"seeds": "tanh(L(gelu(L(x)))"}, r"seeds = .*: cannot parse FFN expression"),
        ({"budget": None}, r"needs a parameter budget"),
        ({"stage_trials": "3,3"}, r"stage_trials = '3,3'"),
        ({"evaluator": "slice"}, r"--evaluator slice: the progressive strategy"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, teacher_dir, task_file, cache_dir, changes, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        run_search_job(_settings(teacher_dir, task_file, cache_dir, out, **changes))
    assert not (out / "study.db").exists() and not (out / "progressive").exists()


def test_a_window_that_no_layout_reaches_is_refused_naming_it(tmp_path, teacher_dir, task_file, cache_dir):
    backbone = tmp_path / "backbone.yaml"
    backbone.write_text(BACKBONE.to_yaml())
    smallest = encoder_params(layout_spec(BACKBONE, [LayerFFN("L(gelu(L(x)))", 1, 4)] * 2))
    out = tmp_path / "run"
    with pytest.raises(
        ConfigError,
        match=rf"no FFN layout of the backbone \(L2 h24.*\) falls in the window "
        rf"\[{0.9 * (smallest - 1):,.0f}, {smallest - 1:,.0f}\] parameters",
    ):
        run_search_job(
            _settings(teacher_dir, task_file, cache_dir, out, backbone=str(backbone), budget=f"params={smallest - 1}")
        )
    assert not (out / "study.db").exists()


CLI = (
    "search",
    "--strategy",
    "progressive",
    "--max-length",
    "16",
    "--eval-steps",
    "2",
    "--warmup-steps",
    "2",
    "--stage-trials",
    "2,2,2",
    "--init-samples",
    "1",
    "--proposals",
    "4",
    "--quiet",
)


def test_cli_prints_the_stages_and_the_best_is_distilled_from_the_teacher(
    monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir
):
    out = tmp_path / "run"
    code, printed, err = run(
        monkeypatch,
        capsys,
        *CLI,
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
        "--budget",
        "params=20000",
    )
    assert code == 0, err
    assert "Progressive FFN search" in printed and "layer 2: " in printed and "efficientbert.yaml" in printed
    code, printed, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--arch",
        str(out / "progressive" / "best.yaml"),
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--init-from-teacher",
        "--steps",
        "2",
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(tmp_path / "final"),
        "--quiet",
    )
    assert code == 0, err
    trained = import_checkpoint(tmp_path / "final" / "model")
    assert trained.spec.layers == ArchSpec.load(out / "progressive" / "best.yaml").layers


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--seeds", "tanh(gelu(L(L(x))))"), "seeds = 'tanh(gelu(L(L(x))))': FFN expression 'tanh(gelu(L(L(x))))'"),
        (("--seeds", "L(gelu(L(x)"), "seeds = 'L(gelu(L(x)': cannot parse FFN expression 'L(gelu(L(x)'"),
        (("--window", "0"), "window = 0.0: expected a share of the parameter budget in (0, 1)"),
        (("--budget", "params=9M", "--backbone", "bert-base"), "progressive: the backbone (L12 h768"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(
    monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir, extra, message
):
    out = tmp_path / "run"
    budget = () if "--budget" in extra else ("--budget", "params=20000")
    code, _, err = run(
        monkeypatch,
        capsys,
        *CLI,
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
        *budget,
        *extra,
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "study.db").exists() and not (out / "progressive").exists()
