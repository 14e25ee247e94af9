"""Extractive QA through every stage: the teacher, distillation, `bertsmith run` (search, finalists,
export) and `bertsmith predict`, on a tiny task a tiny model learns in a few dozen steps (the answer is
the context's one color word, see ``tests/tasks.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bertsmith.data import resolve_task
from bertsmith.distill.objectives import LossConfig
from bertsmith.distill.student import distill_on_task
from bertsmith.distill.teacher import finetune_teacher
from bertsmith.distill.trainer import TrainConfig
from bertsmith.errors import ConfigError
from bertsmith.pipeline import run_pipeline
from bertsmith.runconfig import load_config

from .tasks import COLORS, tiny_spec
from .test_cli import run

LENGTH = 48


@pytest.fixture(scope="module")
def qa_teacher(base_dir, qa_task_file, cache_dir):
    config = TrainConfig(steps=90, lr=3e-3, batch_size=16, eval_every=30)
    return finetune_teacher(
        base_dir, resolve_task(qa_task_file), config=config, max_length=LENGTH, cache_dir=cache_dir, progress=False
    )


def test_a_qa_teacher_learns_to_point_at_the_answer(qa_teacher):
    dev, test = qa_teacher.metrics["dev"], qa_teacher.metrics["test"]
    assert set(dev) >= {"f1", "exact_match"}
    assert dev["f1"] > 0.8 and test["f1"] > 0.8  # a constant (empty) answer scores 0
    assert dev["exact_match"] <= dev["f1"] + 1e-9


def test_a_distilled_qa_student_answers_and_loads_in_stock_transformers(qa_teacher, qa_task_file, cache_dir, tmp_path):
    from transformers import AutoModelForQuestionAnswering

    task = resolve_task(qa_task_file)
    result = distill_on_task(
        tiny_spec(layers=2, hidden=32),
        qa_teacher.directory,
        task,
        losses=LossConfig.from_terms("logits,hidden,attention"),
        config=TrainConfig(steps=60, lr=3e-3, batch_size=16, eval_every=30),
        run_dir=tmp_path / "student",
        init_from_teacher=True,
        max_length=LENGTH,
        cache_dir=cache_dir,
        progress=False,
    )
    assert result.metrics["dev"]["f1"] > 0.5
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    model = AutoModelForQuestionAnswering.from_pretrained(result.model_dir).eval()
    ids = torch.randint(1000, 2000, (2, 12))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert out.start_logits.shape == out.end_logits.shape == (2, 12)


def test_augmented_or_agora_distillation_of_a_qa_task_is_refused(qa_teacher, qa_task_file, tmp_path):
    with pytest.raises(ConfigError, match="augment"):
        distill_on_task(
            tiny_spec(),
            qa_teacher.directory,
            resolve_task(qa_task_file),
            losses=LossConfig(),
            config=TrainConfig(steps=2),
            run_dir=tmp_path / "aug",
            augment=1,
            max_length=LENGTH,
            progress=False,
        )
    assert not (tmp_path / "aug").exists()


def run_qa(folder: Path, base_dir: Path, qa_task_file: Path, cache_dir: Path, sections: dict):
    """`bertsmith run` in ``folder / "out"`` on the tiny QA task: the tiny teacher fine-tuned from
    ``base_dir``, 60 % of its parameters, and the run config ``sections`` (search, finalists, export)."""
    config = {
        "task": str(qa_task_file),
        "max_length": LENGTH,
        "latency_repeats": 3,
        "teacher": {"model": str(base_dir), "steps": 90, "lr": 3e-3, "batch_size": 16},
        "budget": {"params": "60%", "latency": None},
    } | sections
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return run_pipeline(load_config(path), folder / "out", cache_dir=cache_dir, progress=False, log=lambda _: None)


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, base_dir, qa_task_file, cache_dir):
    folder = tmp_path_factory.mktemp("qa-run")
    config = {
        "search": {"trials": 4, "supernet_steps": 4, "options": {"batch_size": 16, "population_size": 4}},
        "finalists": {"count": 1, "steps": 30, "lr": 3e-3, "batch_size": 16},
    }
    result = run_qa(folder, base_dir, qa_task_file, cache_dir, config)
    return folder / "out", result


def test_bertsmith_run_on_a_qa_task_reports_f1_and_measures_at_the_qa_length(qa_run):
    run_dir, result = qa_run
    results = result.results
    assert results["metric"] == "f1"
    assert set(results["chosen"]["metrics"]["test"]) >= {"f1", "exact_match"}
    assert results["teacher"]["metrics"]["dev"]["f1"] > 0.8
    assert {f["kind"] for f in results["finalists"]} >= {"baseline"}
    echoed = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert echoed["budget"]["seq_len"] == echoed["export"]["seq_len"] == LENGTH  # the QA length, unless set


def test_the_qa_export_s_onnx_gives_the_start_and_end_logits_of_torch(qa_run):
    import onnxruntime as ort
    from transformers import AutoModelForQuestionAnswering

    export = qa_run[0] / "export" / "model"
    session = ort.InferenceSession(str(export / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["start_logits", "end_logits"]
    model = AutoModelForQuestionAnswering.from_pretrained(export, trust_remote_code=True).eval()
    ids = np.random.default_rng(0).integers(1000, 2000, (1, 20))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    names = {i.name for i in session.get_inputs()}
    start, end = session.run(None, {k: v for k, v in feed.items() if k in names})
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    np.testing.assert_allclose(start, out.start_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(end, out.end_logits.numpy(), atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bertsmith_predict_answers_a_question_from_a_context(qa_run, backend):
    from bertsmith.cli import app
    from typer.testing import CliRunner

    context = "the film was really quite green and the plot was dull"
    model = str(qa_run[0] / "export" / "model")
    args = ["predict", model, "--text", "which color is named ?", "--text-pair", context, "--backend", backend]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert answer["answer"] == context[answer["start"] : answer["end"]]
    assert answer["answer"] in COLORS


def test_a_qa_task_show_counts_questions(qa_task_file):
    from bertsmith.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["task", "show", str(qa_task_file)])
    assert result.exit_code == 0, result.output
    assert "192" in result.output and "answerable" in result.output


def test_the_task_file_fixture_is_squad_json(qa_task_file):
    data = json.loads((Path(qa_task_file).parent / "dev.json").read_text())
    paragraph = data["data"][0]["paragraphs"][0]
    answer = paragraph["qas"][0]["answers"][0]
    assert paragraph["context"][answer["answer_start"] :].startswith(answer["text"])


def test_predict_reads_questions_and_contexts_from_a_file_and_refuses_a_question_without_one(
    qa_run, tmp_path, monkeypatch, capsys
):
    from bertsmith.cli import app
    from typer.testing import CliRunner

    rows = tmp_path / "questions.csv"
    rows.write_text("question,context\nwhat color ?,a red film\nname the color,the plot was blue and dull\n")
    model = str(qa_run[0] / "export" / "model")
    result = CliRunner().invoke(app, ["predict", model, "--file", str(rows), "--out", str(tmp_path / "a.csv")])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "answer,score,start,end" and [line.split(",")[0] for line in lines[1:]] == ["red", "blue"]
    code, _, err = run(monkeypatch, capsys, "predict", model, "--text", "what color ?")
    assert code == 2 and err.strip() == (
        "error: extractive QA answers a question from a context: give one context per question (--text-pair, "
        "or a context column)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["prune", "extract", "progressive", "random"])
def test_every_strategy_searches_a_qa_task_by_f1(strategy, tmp_path, base_dir, qa_task_file, cache_dir):
    from .test_pipeline import TINY_OPTIONS

    config = {
        "search": {
            "strategy": strategy,
            "trials": 5,
            "objectives": ["params"],
            "eval_steps": 3,
            "supernet_steps": 4,
            "options": {"batch_size": 16, **TINY_OPTIONS.get(strategy, {})},
        },
        "finalists": {"count": 1, "steps": 4, "batch_size": 16, "baselines": []},
        "export": {"onnx": False},
    }
    result = run_qa(tmp_path, base_dir, qa_task_file, cache_dir, config)
    trials = result.results["search"]["trials"]
    assert result.results["metric"] == "f1" and trials
    scores = [t["value"] for t in trials if t["value"] is not None]  # each architecture's dev F1 in the search
    assert scores and all(0.0 <= v <= 1.0 for v in scores)
    assert result.results["chosen"]["metrics"]["test"]["f1"] >= 0.0
