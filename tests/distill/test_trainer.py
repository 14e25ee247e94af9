"""The trainer: schedule, best-model selection, early stopping, atomic checkpoints and exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from bertsmith.arch import ArchSpec
from bertsmith.data.tasktypes import CLASSIFICATION
from bertsmith.distill import checkpoint as ckpt
from bertsmith.distill.objectives import LossConfig, TaskObjective
from bertsmith.distill.trainer import METRICS_LOG, TrainConfig, Trainer, lr_factor, param_groups
from bertsmith.errors import ConfigError
from bertsmith.modeling import BertsmithForSequenceClassification

EMB = {"embeddings": {"vocab_size": 50, "max_positions": 32, "type_vocab_size": 2}}
N = 96


def _data():
    """Label 1 when token 7 occurs: learnable by a tiny model in a few dozen steps."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(8, 50, (N, 12), generator=g)
    labels = torch.randint(0, 2, (N,), generator=g)
    ids[labels == 1, torch.randint(1, 12, (int(labels.sum()),), generator=g)] = 7
    return ids, labels


IDS, LABELS = _data()


def _collate(indices):
    return {
        "input_ids": IDS[indices],
        "attention_mask": torch.ones(len(indices), 12, dtype=torch.long),
        "labels": LABELS[indices],
    }


def _batches(epoch):
    order = torch.randperm(N, generator=torch.Generator().manual_seed(epoch)).tolist()
    return [order[i : i + 16] for i in range(0, N, 16)]


def _objective():
    torch.manual_seed(0)
    spec = ArchSpec.uniform(layers=1, hidden=16, heads=2, ffn=32, **EMB)
    return TaskObjective(
        BertsmithForSequenceClassification(spec, 2), None, LossConfig(labels=1.0, logits=0.0), task_type=CLASSIFICATION
    )


def _accuracy(student):
    logits, _ = student(IDS, torch.ones_like(IDS))
    return {"accuracy": (logits.argmax(-1) == LABELS).float().mean().item()}


def _trainer(objective, run_dir, evaluate=_accuracy, collate=_collate, **config):
    settings = {"steps": 24, "lr": 1e-2, "eval_every": 6} | config
    return Trainer(
        objective,
        batches=_batches,
        collate=collate,
        config=TrainConfig(**settings),
        run_dir=run_dir,
        evaluate=evaluate,
        metric="accuracy",
        progress=False,
    )


def test_lr_schedule_warms_up_then_decays_linearly():
    factors = [lr_factor(s, 100, 0.1, "linear") for s in range(100)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == 1.0 and factors[-1] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert lr_factor(50, 100, 0.1, "constant") == 1.0


def test_no_weight_decay_on_biases_and_layer_norms():
    decay, no_decay = param_groups(_objective(), 0.01)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_training_learns_and_keeps_the_best_model(tmp_path):
    objective = _objective()
    result = _trainer(objective, tmp_path).run()
    assert result.steps == 24 and len(result.history) == 4
    best = max(result.history, key=lambda h: h["accuracy"])
    assert result.best_metrics["accuracy"] == best["accuracy"] > 0.7
    assert _accuracy(objective.student)["accuracy"] == best["accuracy"]  # the best weights are loaded back
    records = [json.loads(line) for line in (tmp_path / METRICS_LOG).read_text().splitlines()]
    assert [r["step"] for r in records if "eval" in r] == [6, 12, 18, 24]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-0000024"


def test_early_stopping_after_patience(tmp_path):
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.9])
    result = _trainer(
        _objective(), tmp_path, evaluate=lambda _s: {"accuracy": next(scores)}, patience=2, steps=30
    ).run()
    assert result.stopped_early and result.steps == 24 and result.best_step == 12


class _Killed(Exception):
    pass


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path):
    reference = _objective()
    ref_result = _trainer(reference, tmp_path / "ref").run()

    calls = {"n": 0}

    def crashing(indices):
        calls["n"] += 1
        if calls["n"] == 16:  # step 16: after the checkpoint at step 12
            raise _Killed
        return _collate(indices)

    with pytest.raises(_Killed):
        _trainer(_objective(), tmp_path / "run", collate=crashing).run()
    assert ckpt.latest_checkpoint(tmp_path / "run").name == "step-0000012"
    with pytest.raises(ConfigError, match="pass --resume"):
        _trainer(_objective(), tmp_path / "run").run()
    with pytest.raises(ConfigError, match=r"other settings \(train.lr: 0.01 -> 0.001\)$"):
        _trainer(_objective(), tmp_path / "run", lr=1e-3).run(resume=True)

    resumed = _objective()
    result = _trainer(resumed, tmp_path / "run").run(resume=True)
    assert result.history == ref_result.history[2:]
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    records = [
        (json.loads(line)["step"], "eval" in line) for line in (tmp_path / "run" / METRICS_LOG).read_text().splitlines()
    ]
    assert records == sorted(set(records))  # in order, nothing logged twice
    evals = [
        json.loads(line)["step"] for line in (tmp_path / "run" / METRICS_LOG).read_text().splitlines() if "eval" in line
    ]
    assert evals == [6, 12, 18, 24]


def test_a_half_written_checkpoint_is_never_used(tmp_path):
    objective = _objective()
    _trainer(objective, tmp_path, steps=6).run()
    (tmp_path / "checkpoints" / ".tmp-crashed").mkdir()  # a kill during the next write
    (tmp_path / "checkpoints" / ".tmp-crashed" / "model.safetensors").write_bytes(b"partial")
    assert ckpt.latest_checkpoint(tmp_path).name == "step-0000006"


def test_non_finite_loss_stops_with_a_message(tmp_path):
    def poisoned(indices):
        batch = _collate(indices)
        return batch

    objective = _objective()
    with torch.no_grad():
        objective.student.head.out.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        _trainer(objective, tmp_path, collate=poisoned).run()


def test_bf16_autocast_trains_fp32_weights(tmp_path):
    objective = _objective()
    seen = []
    original = objective.forward

    def spy(batch):
        loss, parts = original(batch)
        seen.append(torch.is_autocast_enabled("cpu"))
        return loss, parts

    objective.forward = spy
    result = _trainer(objective, tmp_path, bf16=True, steps=6).run()
    assert result.steps == 6 and all(seen) and len(seen) == 6
    assert all(p.dtype == torch.float32 for p in objective.parameters())
