"""distill.task: the importance order of a teacher's units, scored once per weights and data."""

from __future__ import annotations

import copy

import torch

from bertsmith.data import resolve_task
from bertsmith.distill import task as task_module
from bertsmith.distill.task import load_task_data, load_tokenizer, reorder_by_importance
from bertsmith.distill.teacher import load_teacher


def _teacher_and_data(teacher_dir, task_file, cache_dir):
    task = resolve_task(task_file)
    teacher = load_teacher(teacher_dir, task).eval()
    tokenizer = load_tokenizer(teacher_dir, teacher.encoder.spec, 16)
    return teacher, load_task_data(task, tokenizer, data_dir=None, max_length=16, cache_dir=cache_dir)


def test_copies_of_one_teacher_are_scored_once(teacher_dir, task_file, cache_dir, monkeypatch):
    """A second copy of the same teacher on the same data reuses the first scoring and gets the same
    weights; other weights or another seed (other batches) are scored afresh."""
    teacher, data = _teacher_and_data(teacher_dir, task_file, cache_dir)
    calls = []
    scored = task_module.importance
    monkeypatch.setattr(task_module, "importance", lambda *a, **k: calls.append(1) or scored(*a, **k))
    monkeypatch.setattr(task_module, "_SCORINGS", type(task_module._SCORINGS)())
    first, second, changed = copy.deepcopy(teacher), copy.deepcopy(teacher), copy.deepcopy(teacher)
    reorder_by_importance(first, data, seed=0)
    reorder_by_importance(second, data, seed=0)
    assert len(calls) == 1
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), teacher.state_dict().values()))
    with torch.no_grad():
        changed.encoder.layers[0].ffn.down.weight.mul_(2.0)
    reorder_by_importance(changed, data, seed=0)
    assert len(calls) == 2
    reorder_by_importance(copy.deepcopy(teacher), data, seed=1)
    assert len(calls) == 3
