"""Evaluators: the supernet slice scores the teacher-initialised largest architecture like the
teacher; short distillation trains the requested steps from each starting point, reproducibly."""

from __future__ import annotations

import pytest
import torch

from bertsmith.data import resolve_task
from bertsmith.distill.task import evaluate, load_task_data, load_tokenizer, reorder_by_importance
from bertsmith.distill.teacher import load_teacher
from bertsmith.distill.trainer import TrainConfig
from bertsmith.errors import ConfigError
from bertsmith.modeling.elastic import slice_weights
from bertsmith.search.evaluators import DistillEvaluator, SliceEvaluator
from bertsmith.search.space import SearchSpace
from bertsmith.search.supernet import Supernet
from tests.distill.conftest import base_dir, cache_dir, minilm_dir, task_file, teacher_dir  # noqa: F401

from .test_supernet import SPACE


@pytest.fixture(scope="module")
def setup(teacher_dir, task_file, cache_dir):  # noqa: F811
    task = resolve_task(task_file)
    teacher = load_teacher(teacher_dir, task).eval()
    data = load_task_data(task, load_tokenizer(teacher_dir), data_dir=None, max_length=16, cache_dir=cache_dir)
    reorder_by_importance(teacher, data, seed=0)
    net = Supernet(SearchSpace.from_dict(SPACE), 2)
    slice_weights(teacher, teacher.encoder.spec, net.model, net.spec)
    return teacher, data, net


def test_slice_of_the_largest_scores_like_the_teacher(setup, tmp_path):
    teacher, data, net = setup
    evaluator = SliceEvaluator(net, data, supernet_key="k")
    result = evaluator.evaluate(net.spec, tmp_path)
    assert evaluator.metric == "accuracy"
    assert result.metrics == pytest.approx(evaluate(teacher, data, "dev"))
    assert evaluator.fingerprint()["supernet"] == "k"


@pytest.mark.parametrize("init", ["scratch", "teacher", "supernet"])
def test_short_distillation(setup, tmp_path, init):
    teacher, data, net = setup
    spec = net.space.extreme(False)
    evaluator = DistillEvaluator(teacher, data, teacher_key="t", steps=4, init=init, supernet=net, supernet_key="k",
                                 config=TrainConfig(batch_size=16, lr=1e-3))
    first = evaluator.evaluate(spec, tmp_path / "a")
    again = evaluator.evaluate(spec, tmp_path / "b")
    assert first.details == {"steps": 4, "init": init}
    assert first.metrics == again.metrics and 0 <= first.metrics["accuracy"] <= 1
    assert not (tmp_path / "a" / "checkpoints").exists() and (tmp_path / "a" / "metrics.jsonl").exists()


def test_starting_points_differ(setup, tmp_path):
    """Zero training steps is not allowed, so compare after one tiny step at a negligible rate: the
    teacher- and supernet-initialised students keep the teacher's accuracy, the random one does not
    (the tiny task is easy for the teacher, and chance is 0.5)."""
    teacher, data, net = setup
    scores = {}
    for init in ("scratch", "supernet"):
        evaluator = DistillEvaluator(teacher, data, teacher_key="t", steps=1, init=init, supernet=net,
                                     supernet_key="k", config=TrainConfig(batch_size=8, lr=1e-9))
        scores[init] = evaluator.evaluate(net.spec, tmp_path / init).metrics["accuracy"]
    assert scores["supernet"] == pytest.approx(evaluate(teacher, data, "dev")["accuracy"])
    assert scores["supernet"] > scores["scratch"]


def test_bad_evaluator_settings(setup):
    teacher, data, net = setup
    with pytest.raises(ConfigError, match="needs a trained supernet"):
        DistillEvaluator(teacher, data, teacher_key="t", steps=2, init="supernet")
    with pytest.raises(ConfigError, match="the train2 split has no labels"):
        SliceEvaluator(net, data, supernet_key="k", split="train2")
    assert torch.is_tensor(next(net.parameters()))
