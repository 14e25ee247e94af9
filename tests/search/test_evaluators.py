"""Evaluators: the supernet slice scores the teacher-initialised largest architecture like the
teacher; short distillation trains the requested steps from each starting point, reproducibly."""

from __future__ import annotations

import pytest

from bertsmith.data import resolve_task
from bertsmith.distill.task import evaluate, load_task_data, load_tokenizer
from bertsmith.distill.teacher import load_teacher
from bertsmith.distill.trainer import TrainConfig
from bertsmith.errors import ConfigError
from bertsmith.search.evaluators import DistillEvaluator, SliceEvaluator
from bertsmith.search.space import SearchSpace
from bertsmith.search.supernet import SupernetJob

from .test_supernet import SPACE


@pytest.fixture(scope="module")
def setup(tmp_path_factory, teacher_dir, task_file, cache_dir):
    """Teacher, data, and a supernet job trained one step at a negligible rate: its largest
    sub-network is the (reordered) teacher."""
    task = resolve_task(task_file)
    teacher = load_teacher(teacher_dir, task).eval()
    data = load_task_data(
        task, load_tokenizer(teacher_dir, teacher.encoder.spec, 16), data_dir=None, max_length=16, cache_dir=cache_dir
    )
    job = SupernetJob(
        SearchSpace.from_dict(SPACE),
        teacher_dir,
        task,
        run_dir=tmp_path_factory.mktemp("sn"),
        config=TrainConfig(steps=1, lr=1e-9, batch_size=8),
        max_length=16,
        cache_dir=cache_dir,
        progress=False,
    )
    return teacher, data, job


def test_slice_of_the_largest_scores_like_the_teacher(setup, tmp_path):
    teacher, data, job = setup
    evaluator = SliceEvaluator(job, data)
    assert evaluator.fingerprint()["supernet"] == job.key  # known before training
    result = evaluator.evaluate(job.space.extreme(True), tmp_path)
    assert evaluator.metric == "accuracy"
    assert result.metrics == pytest.approx(evaluate(teacher, data, "dev"))


@pytest.mark.parametrize("init", ["scratch", "teacher", "supernet"])
def test_short_distillation(setup, tmp_path, init):
    teacher, data, job = setup
    spec = job.space.extreme(False)
    evaluator = DistillEvaluator(
        teacher, data, teacher_key="t", steps=4, init=init, supernet=job, config=TrainConfig(batch_size=16, lr=1e-3)
    )
    first = evaluator.evaluate(spec, tmp_path / "a")
    again = evaluator.evaluate(spec, tmp_path / "b")
    assert first.details == {"steps": 4, "init": init}
    assert first.metrics == again.metrics and 0 <= first.metrics["accuracy"] <= 1
    assert not (tmp_path / "a" / "checkpoints").exists() and (tmp_path / "a" / "metrics.jsonl").exists()


def test_starting_points_differ(setup, tmp_path):
    """Zero training steps is not allowed, so compare after one tiny step at a negligible rate: the
    teacher- and supernet-initialised students keep the teacher's accuracy, the random one does not
    (the tiny task is easy for the teacher, and chance is 0.5)."""
    teacher, data, job = setup
    scores = {}
    for init in ("scratch", "supernet"):
        evaluator = DistillEvaluator(
            teacher, data, teacher_key="t", steps=1, init=init, supernet=job, config=TrainConfig(batch_size=8, lr=1e-9)
        )
        scores[init] = evaluator.evaluate(job.space.extreme(True), tmp_path / init).metrics["accuracy"]
    assert scores["supernet"] == pytest.approx(evaluate(teacher, data, "dev")["accuracy"])
    assert scores["supernet"] > scores["scratch"]


def test_bad_evaluator_settings(setup):
    teacher, data, job = setup
    with pytest.raises(ConfigError, match="needs a trained supernet"):
        DistillEvaluator(teacher, data, teacher_key="t", steps=2, init="supernet")
    with pytest.raises(ConfigError, match="the train2 split has no labels"):
        SliceEvaluator(job, data, split="train2")
