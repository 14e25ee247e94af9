"""Devices: one setting picks where training runs, budgets name where latency is measured, and a device
that is not there is one clear error."""

from __future__ import annotations

import pytest
import torch

from bertsmith import device
from bertsmith.errors import ConfigError
from bertsmith.search.budget import Budget
from tests.test_pipeline import tiny_config


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_the_compute_device_is_the_gpu_when_present_unless_the_setting_says_cpu(monkeypatch):
    monkeypatch.delenv(device.ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.compute_device() == torch.device("cuda")
    monkeypatch.setenv(device.ENV, "cpu")
    assert device.compute_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv(device.ENV)
    assert device.compute_device() == torch.device("cpu")


@pytest.mark.parametrize(
    "value, message",
    [
        ("cuda", "BERTSMITH_DEVICE = 'cuda': this machine has no usable CUDA device"),
        ("gpu", "BERTSMITH_DEVICE = 'gpu': expected one of cpu, cuda"),
    ],
)
def test_a_compute_device_that_is_not_there_is_a_clear_error(monkeypatch, no_cuda, value, message):
    monkeypatch.setenv(device.ENV, value)
    with pytest.raises(ConfigError, match=message):
        device.compute_device()


def test_latency_on_cuda_without_cuda_is_refused_naming_the_setting(no_cuda):
    with pytest.raises(ConfigError, match=r"budget.device = 'cuda': .*no usable CUDA device.*measure latency on 'cpu'"):
        device.latency_device("cuda")
    with pytest.raises(ConfigError, match="budget.device = 'cuda'"):
        from bertsmith.search.costs import CostModel

        CostModel(Budget(params=10**6, device="cuda"))
    with pytest.raises(ConfigError, match="--budget 'device=gpu': device"):
        Budget.parse("device=gpu")


def test_a_run_measuring_latency_on_a_missing_gpu_exits_2_before_anything_is_written(
    monkeypatch, capsys, tmp_path, base_dir, task_file, no_cuda
):
    from tests.test_cli import run

    config = tiny_config(tmp_path, base_dir, task_file, **{"budget.device": "cuda"})
    code, _out, err = run(monkeypatch, capsys, "run", str(config), "--out", str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1 and "budget.device = 'cuda'" in err, err
    assert not (tmp_path / "out").exists()


def test_training_puts_the_model_the_teacher_and_every_batch_tensor_on_the_compute_device(tmp_path):
    """On this machine the compute device is the CPU (or the GPU where there is one): what matters is
    that every tensor a step touches is on that one device."""
    from bertsmith.arch import ArchSpec
    from bertsmith.data.tokenize import Encoded
    from bertsmith.data.tasktypes import CLASSIFICATION
    from bertsmith.distill.objectives import LossConfig, TaskObjective
    from bertsmith.distill.trainer import TrainConfig, Trainer
    from bertsmith.modeling import BertsmithForSequenceClassification
    from tests.distill.test_teacher_cache import _batch, _split

    emb = {"embeddings": {"vocab_size": 97, "max_positions": 40, "type_vocab_size": 2}}
    student = BertsmithForSequenceClassification(ArchSpec.uniform(layers=1, hidden=16, heads=2, ffn=32, **emb), 3)
    teacher = BertsmithForSequenceClassification(ArchSpec.uniform(layers=2, hidden=32, heads=4, ffn=64, **emb), 3)
    objective = TaskObjective(
        student, teacher, LossConfig.from_terms("labels,logits,hidden,attention"), task_type=CLASSIFICATION
    )
    seen: list[set[torch.device]] = []
    forward = objective.forward

    def watched(batch):
        seen.append(
            {v.device for v in batch.values()}
            | {p.device for p in objective.parameters()}
            | {p.device for p in objective.teacher.parameters()}
        )
        return forward(batch)

    objective.forward = watched
    split: Encoded = _split()
    Trainer(
        objective,
        batches=lambda _epoch: [[0, 1, 2], [3, 4, 5]],
        collate=lambda ids: _batch(split, ids),
        config=TrainConfig(steps=2, batch_size=3),
        run_dir=tmp_path / "run",
        progress=False,
    ).run()
    assert seen == [{device.compute_device()}] * 2
