"""The `extract` strategy: Bort's grid, the approximation scheme's boxes and stages, the selection
rules, and the strategy end to end on the tiny teacher (resume, bad input)."""

from __future__ import annotations

import json

import optuna
import pytest

from bertsmith.arch import ArchSpec
from bertsmith.cost import encoder_params
from bertsmith.errors import ConfigError
from bertsmith.search.grid import bort_grid, resolve_grid, scaled_grid
from bertsmith.search.job import SearchSettings, run_search_job
from bertsmith.search.strategies.extract import Candidate, Extract, Scored, boxes, coarse, fine, pareto_set, select
from tests.tasks import tiny_spec
from tests.test_cli import run

from .settings import search_settings

GRID = "depth: [1, 2]\nheads: [2, 4]\nhidden: [24, 48]\nffn: [16, 48]\nhead_dim: 12\n"


# ---- the grid ------------------------------------------------------------------------------------
def test_bort_grid_skips_heads_that_do_not_divide_hidden():
    grid = bort_grid()
    assert grid.size == 6 * 4 * 3 * 5 == 360
    # 12 heads divide neither 512 nor 1024: 2 of the 12 (A, H) pairs are skipped
    assert len(grid.tuples()) == 6 * 10 * 5 and all(h % a == 0 for _, a, h, _ in grid.tuples())
    spec = grid.spec(4, 8, 1024, 768, tiny_spec())
    assert spec.hidden == 1024 and spec.layers[0].attention.qk_dim == 128 and spec.num_layers == 4  # Bort's own shape


def test_scaled_grid_follows_the_teacher_and_keeps_its_head_size():
    teacher = ArchSpec.uniform(layers=6, hidden=384, heads=12, ffn=1536, embeddings=tiny_spec().embeddings)
    grid = scaled_grid(teacher)
    assert grid.depth == [1, 2, 3, 4, 5, 6] and grid.heads == [3, 6, 9, 12] and grid.hidden == [192, 288, 384]
    assert grid.ffn == [96, 192, 288, 384, 1152] and grid.head_dim == 32
    specs = grid.candidates(teacher)
    assert len(specs) == 300 and max(specs, key=encoder_params).hidden == 384
    assert all(s.embeddings == teacher.embeddings and s.layers[0].attention.qk_dim == 32 for s in specs)


def test_grid_file_and_empty_grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("depth: [2]\nheads: [5]\nhidden: [24, 48]\nffn: [16]\n")
    grid = resolve_grid(path, tiny_spec())
    with pytest.raises(ConfigError, match=r"the grid is empty: no heads value \(\[5\]\) divides"):
        grid.candidates(tiny_spec())
    path.write_text("depth: [2]\nheads: [2]\nhidden: [24]\nffn: [16]\nsize: 3\n")
    with pytest.raises(Exception, match="size"):
        resolve_grid(path, tiny_spec())


# ---- the scheme ----------------------------------------------------------------------------------
def _candidate(dahi, p, i=None):
    return Candidate(tuple(dahi), float(p), float(i if i is not None else p))


def test_boxes_have_cost_ratio_below_one_plus_epsilon_and_contained_candidates_are_marked():
    cands = [
        _candidate((1, 1, 1, 1), 100),
        _candidate((1, 1, 1, 2), 109),
        _candidate((2, 1, 1, 1), 111),
        _candidate((1, 2, 1, 1), 105),
        _candidate((3, 3, 3, 3), 1000),
    ]
    out = boxes(cands, 0.1)
    for members in out.values():
        assert max(c.p for c in members) / min(c.p for c in members) < 1.1
    by = {c.dahi: c for c in cands}
    assert by[(1, 1, 1, 1)].box == by[(1, 1, 1, 2)].box == by[(1, 2, 1, 1)].box == 0 and by[(2, 1, 1, 1)].box == 1
    assert not by[(1, 1, 1, 1)].maximal  # contained in ⟨1, 1, 1, 2⟩ of its box
    assert by[(1, 1, 1, 2)].maximal and by[(1, 2, 1, 1)].maximal and by[(2, 1, 1, 1)].maximal


def test_coarse_stage_trains_one_per_box_and_the_maximum_point_then_fine_fills_front_boxes():
    cands = [
        _candidate((1, 1, 1, 2), 109, 50),
        _candidate((1, 2, 1, 1), 105, 60),
        _candidate((1, 1, 1, 1), 100, 40),
        _candidate((2, 2, 2, 2), 300, 300),
        _candidate((2, 3, 2, 2), 310, 320),
    ]
    first = coarse(cands, 0.1)
    by = {c.dahi: c for c in cands}
    # box 0 holds three; the uncontained ones are ⟨1,1,1,2⟩ and ⟨1,2,1,1⟩, the cheaper in i is trained
    assert [c.dahi for c in first] == [(1, 1, 1, 2), (2, 3, 2, 2)]
    assert by[(2, 3, 2, 2)].stage == 1 and by[(2, 2, 2, 2)].stage == 0  # ⟨2,2,2,2⟩ is contained in its box
    second = fine(cands, {0})
    assert [c.dahi for c in second] == [(1, 2, 1, 1)] and by[(1, 1, 1, 1)].stage == 0
    every = coarse([_candidate(c.dahi, c.p, c.i) for c in cands], 0.1, exhaustive=True)
    assert len(every) == 5


def test_pareto_set_and_selection_rules():
    pts = [
        Scored((1, 1, 1, 1), 0.80, 10, 10, 0),
        Scored((2, 1, 1, 1), 0.85, 20, 20, 1),
        Scored((2, 2, 1, 1), 0.84, 30, 30, 2),
        Scored((4, 4, 4, 4), 0.86, 100, 100, 3),
    ]
    front = pareto_set(pts)
    assert [s.dahi for s in front] == [(1, 1, 1, 1), (2, 1, 1, 1), (4, 4, 4, 4)]  # ⟨2,2,1,1⟩ is beaten
    top = pts[-1]
    assert select(front, top, "within:0.01").dahi == (2, 1, 1, 1)
    assert select(front, top, "within:0.1").dahi == (1, 1, 1, 1)
    assert select(front, top, "within:0").dahi == (4, 4, 4, 4)
    # product: (p/p_T)(i/i_T)(e/e_T): 0.01·(0.2/0.14) < 0.04·(0.15/0.14) < 1
    assert select(front, top, "product").dahi == (1, 1, 1, 1)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epsilon": 0.0}, r"epsilon = 0.0: expected a number in \(0, 1\)"),
        ({"epsilon": 1.0}, r"epsilon = 1.0: expected a number in \(0, 1\)"),
        ({"select": "best"}, "select = 'best'"),
        ({"select": "within:-1"}, "select = 'within:-1'"),
        ({"inference_cost": "energy"}, "inference_cost = 'energy'"),
        ({"grid": "huge"}, "grid = 'huge'"),
        ({"refine_margin": -0.1}, "refine_margin = -0.1: expected a margin ≥ 0"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        Extract(**options)


# ---- end to end ----------------------------------------------------------------------------------
def _settings(teacher_dir, task_file, cache_dir, out, grid, **changes) -> SearchSettings:
    settings = dict(
        space=None,
        teacher=teacher_dir,
        task=str(task_file),
        run_dir=out,
        strategy="extract",
        grid=str(grid),
        epsilon=0.3,
        eval_steps=3,
        max_length=16,
        batch_size=16,
        cache_dir=cache_dir,
        progress=False,
    )
    return search_settings(**settings | changes)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, teacher_dir, task_file, cache_dir):
    root = tmp_path_factory.mktemp("extract")
    grid = root / "grid.yaml"
    grid.write_text(GRID)
    out = root / "run"
    result = run_search_job(_settings(teacher_dir, task_file, cache_dir, out, grid))
    return out, grid, result


def test_extraction_trains_the_planned_candidates_and_selects_from_their_pareto_set(extracted):
    out, _, result = extracted
    plan = json.loads((out / "extract" / "plan.json").read_text())
    selection = json.loads((out / "extract" / "selection.json").read_text())
    counts = plan["counts"]
    assert counts["grid"] == counts["buildable"] == counts["within_budget"] == 16
    staged = [c for c in plan["candidates"] if c["stage"]]
    trials = [t for t in result.study.trials if "extract" in t.user_attrs]
    assert sorted(map(tuple, (t.user_attrs["extract"] for t in trials))) == sorted(tuple(c["dahi"]) for c in staged)
    added = sum(c["reason"] == "maximum point" for c in staged)  # T, when no box picked it
    assert counts["coarse"] == counts["boxes"] + added
    assert selection["counts"]["surrogate_trained"] == len(trials) == counts["coarse"] + counts["fine"] < 16
    assert result.evaluated == len(trials) and result.stopped is None
    # the maximum point: the most parameters in the grid
    assert tuple(selection["maximum_point"]["dahi"]) == (2, 4, 48, 48)
    scored = [
        Scored(
            tuple(t.user_attrs["extract"]),
            t.values[0],
            t.user_attrs["costs"]["params"],
            t.user_attrs["costs"]["flops"],
            t.number,
        )
        for t in trials
    ]
    assert [s.dahi for s in pareto_set(scored)] == [tuple(p["dahi"]) for p in selection["pareto"]]
    chosen = selection["selected"]
    assert any(p["dahi"] == chosen["dahi"] for p in selection["pareto"])
    assert (
        chosen["metric"] >= selection["maximum_point"]["metric"] - 0.01
        or chosen["dahi"] == selection["maximum_point"]["dahi"]
    )
    assert ArchSpec.from_yaml((out / "extract" / "selected.yaml").read_text()).to_dict() == chosen["spec"]


def test_a_rerun_trains_nothing_new(extracted, teacher_dir, task_file, cache_dir):
    out, grid, first = extracted
    before = len(first.study.trials)
    again = run_search_job(_settings(teacher_dir, task_file, cache_dir, out, grid))
    assert len(again.study.trials) == before and again.evaluated == first.evaluated


def test_exhaustive_trains_every_candidate_within_the_budget(tmp_path, teacher_dir, task_file, cache_dir):
    grid = tmp_path / "grid.yaml"
    grid.write_text("depth: [1, 2]\nheads: [2]\nhidden: [24, 48]\nffn: [16]\nhead_dim: 12\n")
    budget = encoder_params(resolve_grid(grid, tiny_spec(layers=3, hidden=48)).spec(2, 2, 24, 16, tiny_spec()))
    result = run_search_job(
        _settings(teacher_dir, task_file, cache_dir, tmp_path / "run", grid, exhaustive=True, budget=f"params={budget}")
    )
    counts = json.loads((tmp_path / "run" / "extract" / "plan.json").read_text())["counts"]
    assert counts["within_budget"] == 2 and counts["over_budget"] == 2 and result.evaluated == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--epsilon", "1.5"), "epsilon = 1.5: expected a number in (0, 1)"),
        (("--epsilon", "0"), "epsilon = 0.0: expected a number in (0, 1)"),
        (("--grid", "EMPTY"), "the grid is empty"),
        (("--grid", "bort"), "cannot be cut from the teacher"),
        (("--budget", "params=10"), "no grid architecture fits the budget"),
        (("--evaluator", "slice"), "scores candidates by a distillation"),
        (("--space", "x.yaml"), "the extract strategy takes no search space"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir, extra, message
):
    empty = tmp_path / "empty.yaml"
    empty.write_text("depth: [1]\nheads: [5]\nhidden: [24]\nffn: [16]\n")
    extra = tuple(str(empty) if e == "EMPTY" else e for e in extra)
    out = tmp_path / "run"
    code, _, err = run(
        monkeypatch,
        capsys,
        "search",
        "--strategy",
        "extract",
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
        "--eval-steps",
        "2",
        "--quiet",
        *extra,
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (out / "study.db").exists() and not (out / "extract").exists()


def test_cli_prints_the_counts_and_the_selection(monkeypatch, capsys, tmp_path, teacher_dir, task_file, cache_dir):
    grid = tmp_path / "grid.yaml"
    grid.write_text("depth: [1, 2]\nheads: [2]\nhidden: [24]\nffn: [16, 48]\nhead_dim: 12\n")
    code, out, err = run(
        monkeypatch,
        capsys,
        "search",
        "--strategy",
        "extract",
        "--grid",
        str(grid),
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
        "--eval-steps",
        "2",
        "--epsilon",
        "0.5",
        "--quiet",
    )
    assert code == 0, err
    assert "grid 4 tuples, 4 with A dividing H, 4 within the budget" in out and "selected (within:0.01)" in out
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert study.directions[1:] == [optuna.study.StudyDirection.MINIMIZE] * 2  # params and flops


def test_the_selection_is_pretrained_then_fine_tuned(
    monkeypatch, capsys, extracted, tmp_path, teacher_dir, task_file, cache_dir
):
    """Bort's pipeline on the extracted architecture: distillation pretraining on raw text (the
    encoder-only teacher picks the relations recipe), then task distillation from that encoder."""
    out, _, _ = extracted
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"the film number {i} was quite good and the plot was fine" for i in range(60)), encoding="utf-8"
    )
    selected = out / "extract" / "selected.yaml"
    code, printed, err = run(
        monkeypatch,
        capsys,
        "pretrain",
        "--arch",
        str(selected),
        "--teacher",
        str(teacher_dir),
        "--corpus",
        str(corpus),
        "--out",
        str(tmp_path / "pre"),
        "--max-length",
        "32",
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--quiet",
    )
    assert code == 0, err
    assert "recipe relations" in printed
    code, printed, err = run(
        monkeypatch,
        capsys,
        "distill",
        "--arch",
        str(selected),
        "--init",
        str(tmp_path / "pre" / "model"),
        "--teacher",
        str(teacher_dir),
        "--task",
        str(task_file),
        "--out",
        str(tmp_path / "task"),
        "--max-length",
        "16",
        "--cache-dir",
        str(cache_dir),
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--quiet",
    )
    assert code == 0, err
    result = json.loads((tmp_path / "task" / "result.json").read_text())
    assert (
        result["spec"] == ArchSpec.from_yaml(selected.read_text()).to_dict() and "accuracy" in result["metrics"]["dev"]
    )


@pytest.mark.parametrize(
    "content, message", [(b"\n  \n", "the corpus has no text"), (b"good\n\xff\xfe bad\n", "line 2: not UTF-8")]
)
def test_a_bad_pretraining_corpus_exits_2(monkeypatch, capsys, tmp_path, teacher_dir, content, message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    arch = tmp_path / "arch.json"
    arch.write_text(tiny_spec(layers=1, hidden=24, heads=2).to_json())
    code, _, err = run(
        monkeypatch,
        capsys,
        "pretrain",
        "--arch",
        str(arch),
        "--teacher",
        str(teacher_dir),
        "--corpus",
        str(corpus),
        "--out",
        str(tmp_path / "pre"),
        "--steps",
        "2",
        "--max-length",
        "16",
        "--quiet",
    )
    assert code == 2 and message in err and str(corpus) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pre" / "model").exists()


def test_surrogates_can_start_from_the_grids_supernet(tmp_path, teacher_dir, task_file, cache_dir):
    grid = tmp_path / "grid.yaml"
    grid.write_text("depth: [1, 2]\nheads: [2, 4]\nhidden: [48]\nffn: [16]\nhead_dim: 12\n")
    out = tmp_path / "run"
    result = run_search_job(
        _settings(teacher_dir, task_file, cache_dir, out, grid, init="supernet", supernet_steps=4, epsilon=0.5)
    )
    info = json.loads((out / "supernet" / "supernet.json").read_text())
    assert info["space"]["depth"] == [1, 2] and info["space"]["layer"]["heads"] == [2, 4]
    trials = [t for t in result.study.trials if "extract" in t.user_attrs]
    assert trials and all(t.user_attrs["details"]["init"] == "supernet" for t in trials)


def test_the_fine_stage_refines_only_front_boxes_close_to_the_maximum_point(
    extracted, teacher_dir, task_file, cache_dir
):
    out, grid, _ = extracted
    plans = {}
    for refine in (0.05, 1.0):  # the same study: the wider margin only adds trainings
        result = run_search_job(_settings(teacher_dir, task_file, cache_dir, out, grid, refine_margin=refine))
        plans[refine] = json.loads((out / "extract" / "plan.json").read_text())
    metric = {tuple(t.user_attrs["extract"]): t.values[0] for t in result.study.trials if "extract" in t.user_attrs}
    narrow, wide = ({tuple(c["dahi"]) for c in plans[k]["candidates"] if c["stage"] == 2} for k in (0.05, 1.0))
    assert narrow <= wide
    top = max(plans[0.05]["candidates"], key=lambda c: (c["p"], c["i"], c["dahi"]))
    picks = {c["box"]: metric[tuple(c["dahi"])] for c in plans[0.05]["candidates"] if c["stage"] == 1}
    for c in plans[0.05]["candidates"]:
        if c["stage"] == 2:
            assert picks[c["box"]] >= metric[tuple(top["dahi"])] - 0.05


def test_measured_latency_can_be_the_inference_cost(tmp_path, teacher_dir, task_file, cache_dir):
    grid = tmp_path / "grid.yaml"
    grid.write_text("depth: [1, 2]\nheads: [2]\nhidden: [24]\nffn: [16]\nhead_dim: 12\n")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="budget seq_len = 128: longer than the 64 positions of L1 h24"):
        run_search_job(_settings(teacher_dir, task_file, cache_dir, out, grid, inference_cost="latency"))
    result = run_search_job(
        _settings(teacher_dir, task_file, cache_dir, out, grid, inference_cost="latency", budget="seq_len=16")
    )
    plan = json.loads((out / "extract" / "plan.json").read_text())
    assert plan["inference"] == "latency" and all(c["i"] > 0 for c in plan["candidates"])
    assert [d.name for d in result.study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    assert all("latency" in t.user_attrs["costs"] for t in result.study.trials)
