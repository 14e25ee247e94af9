"""Objectives: every kind of student distils from a teacher; the terms are wired as configured."""

from __future__ import annotations

import pytest
import torch

from bertsmith.arch import ArchSpec
from bertsmith.data.tasktypes import CLASSIFICATION, REGRESSION
from bertsmith.distill import losses as L
from bertsmith.distill.objectives import AgnosticObjective, LossConfig, TaskObjective, capture_qkv, split_qkv
from bertsmith.errors import ConfigError
from bertsmith.modeling import BertsmithForMaskedLM, BertsmithForSequenceClassification, BertsmithModel
from tests.conftest import KIND_GRID, tiny_spec

EMB = {"embeddings": {"vocab_size": 97, "max_positions": 40, "type_vocab_size": 2}}
FULL = LossConfig.from_terms("labels,logits,hidden,attention")


def _teacher(heads=4, hidden=64, layers=4):
    torch.manual_seed(1)
    return BertsmithForSequenceClassification(
        ArchSpec.uniform(layers=layers, hidden=hidden, heads=heads, ffn=96, **EMB), 3
    )


def _batch(rows=3, length=9):
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(rows, length, dtype=torch.long)
    mask[0, 6:] = 0
    return {
        "input_ids": torch.randint(1, 97, (rows, length), generator=g),
        "attention_mask": mask,
        "token_type_ids": torch.zeros(rows, length, dtype=torch.long),
        "labels": torch.tensor([0, 2, 1])[:rows],
    }


@pytest.mark.parametrize(("attention", "ffn", "per_layer"), KIND_GRID)
def test_every_kind_distils_and_only_the_student_learns(attention, ffn, per_layer):
    student = BertsmithForSequenceClassification(tiny_spec(attention, ffn, per_layer), 3)
    teacher = _teacher()
    objective = TaskObjective(student, teacher, FULL, task_type=CLASSIFICATION)
    loss, parts = objective(_batch())
    assert set(parts) == {"labels", "logits", "hidden", "attention"} and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in objective.intermediate.project.parameters())
    assert student.head.out.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(name.startswith("_teacher") for name, _ in objective.named_parameters())


def test_attention_mode_follows_head_counts():
    same = TaskObjective(
        BertsmithForSequenceClassification(ArchSpec.uniform(layers=2, hidden=32, heads=4, ffn=64, **EMB), 3),
        _teacher(heads=4),
        FULL,
        task_type=CLASSIFICATION,
    )
    other = TaskObjective(
        BertsmithForSequenceClassification(ArchSpec.uniform(layers=2, hidden=32, heads=2, ffn=64, **EMB), 3),
        _teacher(heads=4),
        FULL,
        task_type=CLASSIFICATION,
    )
    assert same.intermediate.modes == ["scores", "scores"] and same.intermediate.layer_map == [2, 4]
    assert other.intermediate.modes == ["relation", "relation"]
    with pytest.raises(ConfigError, match="student layer 1 has 2 heads"):
        TaskObjective(
            other.student,
            _teacher(heads=4),
            LossConfig(attention=1.0, attention_mode="scores"),
            task_type=CLASSIFICATION,
        )


@pytest.mark.parametrize("heads", [4, 2], ids=["scores", "relation"])
def test_the_attention_term_on_every_layer_pair_or_the_last_only(heads):
    student = BertsmithForSequenceClassification(
        ArchSpec.uniform(layers=2, hidden=32, heads=heads, ffn=64, **EMB), 3
    ).eval()  # no dropout: every forward of the student gives the same outputs
    teacher, batch = _teacher(heads=4), _batch()
    every, last = (
        TaskObjective(
            student, teacher, LossConfig(logits=0.0, attention=1.0, attention_layers=layers), task_type=CLASSIFICATION
        )
        for layers in ("all", "last")
    )
    mode = "scores" if heads == 4 else "relation"
    assert every.intermediate.attention_pairs == [(0, 1, mode), (1, 3, mode)]
    assert last.intermediate.attention_pairs == [(1, 3, mode)]
    assert last.intermediate.relation_layers() == (([1], [3]) if mode == "relation" else ([], []))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with capture_qkv(student.encoder, [0, 1]) as s_qkv, capture_qkv(teacher.encoder, [1, 3]) as t_qkv:
        s_out = student.encoder(ids, mask, output_attentions=True)
        t_out = teacher.encoder(ids, mask, output_attentions=True)

    def term(i: int, t: int) -> torch.Tensor:  # the textbook term of one layer pair
        if mode == "scores":
            return L.attention_score_mse(s_out.attentions[i], t_out.attentions[t], mask)
        s_parts = split_qkv(s_qkv[i], student.encoder.spec.layers[i].attention)
        t_parts = split_qkv(t_qkv[t], teacher.encoder.spec.layers[t].attention)
        return sum(L.relation_kl(s, t, every.intermediate.relation_heads, mask) for s, t in zip(s_parts, t_parts))

    assert every(batch)[1]["attention"].item() == pytest.approx((term(0, 1) + term(1, 3)).item(), rel=1e-5)
    assert last(batch)[1]["attention"].item() == pytest.approx(term(1, 3).item(), rel=1e-5)


def test_captured_qkv_is_the_attention_input():
    model = BertsmithModel(ArchSpec.uniform(layers=2, hidden=32, heads=4, ffn=64, qk_dim=6, v_dim=10, **EMB)).eval()
    x = torch.randint(1, 97, (2, 7))
    with capture_qkv(model, [1]) as store:
        out = model(x, output_hidden_states=True)
    att = model.layers[1].attention
    q, k, v = split_qkv(store[1], model.spec.layers[1].attention)
    ref = att.qkv(out.hidden_states[1])
    assert torch.allclose(torch.cat([q, k, v], -1), ref, atol=1e-6)
    assert (q.shape[-1], v.shape[-1]) == (24, 40) and not att.qkv._forward_hooks


def test_distillation_loss_falls_when_training_on_a_batch():
    student = BertsmithForSequenceClassification(ArchSpec.uniform(layers=2, hidden=32, heads=2, ffn=64, **EMB), 3)
    objective = TaskObjective(
        student, _teacher(), LossConfig.from_terms("logits,hidden,attention"), task_type=CLASSIFICATION
    )
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    batch, history = _batch(), []
    for _ in range(30):
        loss, _ = objective(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0]


def test_regression_uses_mse_to_teacher_and_labels():
    student = BertsmithForSequenceClassification(ArchSpec.uniform(layers=1, hidden=32, heads=2, ffn=64, **EMB), 1)
    teacher = BertsmithForSequenceClassification(
        ArchSpec.uniform(layers=2, hidden=32, heads=2, ffn=64, **EMB), 1
    ).eval()
    batch = _batch() | {"labels": torch.tensor([0.5, 4.0, 2.5])}
    objective = TaskObjective(student, teacher, LossConfig(labels=1.0, logits=1.0), task_type=REGRESSION).eval()
    _, parts = objective(batch)
    s, t = (
        student(batch["input_ids"], batch["attention_mask"])[0],
        teacher(batch["input_ids"], batch["attention_mask"])[0],
    )
    assert torch.allclose(parts["logits"], torch.nn.functional.mse_loss(s, t))
    assert torch.allclose(parts["labels"], torch.nn.functional.mse_loss(s.squeeze(-1), batch["labels"]))


def test_masked_lm_distillation_needs_masked_lm_heads():
    spec = ArchSpec.uniform(layers=2, hidden=32, heads=2, ffn=64, **EMB)
    student, teacher = (
        BertsmithForMaskedLM(spec),
        BertsmithForMaskedLM(ArchSpec.uniform(layers=3, hidden=48, heads=4, ffn=64, **EMB)),
    )
    objective = AgnosticObjective(student, teacher, LossConfig(logits=0.0, mlm=1.0, hidden=1.0), mask_id=3)
    batch = _batch()
    special = torch.zeros_like(batch["input_ids"])
    special[:, 0] = 1
    torch.manual_seed(0)
    loss, parts = objective({**batch, "special_tokens_mask": special})
    assert set(parts) == {"mlm", "hidden"} and torch.isfinite(loss)
    with pytest.raises(ConfigError, match="masked-LM head"):
        AgnosticObjective(BertsmithModel(spec), teacher, LossConfig(logits=0.0, mlm=1.0), mask_id=3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LossConfig(logits=0.0), "every loss weight is 0"),
        (lambda: LossConfig.from_terms("logits,kd"), "losses = 'logits,kd'"),
        (lambda: TaskObjective(_teacher(), None, LossConfig(), task_type=CLASSIFICATION), "need a teacher"),
        (
            lambda: TaskObjective(
                _teacher(layers=2), _teacher(), LossConfig(hidden=1.0, layer_map=(1, 5)), task_type=CLASSIFICATION
            ),
            "layer_map = \\[1, 5\\]",
        ),
        (lambda: AgnosticObjective(_teacher(), _teacher(), LossConfig(logits=1.0)), "no labels or task logits"),
    ],
)
def test_bad_configurations_are_clear_errors(make, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        make()


def test_losses_are_computed_in_fp32_under_bf16_autocast():
    """Under bf16 autocast the forwards run in bf16, but every loss term is computed in fp32 from their
    outputs: a term rounded to bf16 (8 bits of mantissa) would carry that rounding into its gradient."""
    from bertsmith import presets
    from bertsmith.modeling import BertsmithForSequenceClassification

    torch.manual_seed(0)
    teacher = BertsmithForSequenceClassification(presets.get("bert-mini"), 2).eval()
    student = BertsmithForSequenceClassification(presets.get("bert-tiny"), 2)
    objective = TaskObjective(
        student, teacher, LossConfig.from_terms("labels,logits,hidden,attention"), task_type=CLASSIFICATION
    )
    batch = {
        "input_ids": torch.randint(1000, 3000, (4, 16)),
        "attention_mask": torch.ones(4, 16, dtype=torch.long),
        "labels": torch.tensor([0, 1, 0, 1]),
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, parts = objective(batch)
    reference = objective(batch)[1]
    for name, value in parts.items():
        assert value.dtype == torch.float32, name
        assert float(value) != float(value.to(torch.bfloat16)), f"{name} was rounded to bf16"
    for name in ("hidden", "attention"):
        assert float(parts[name]) == pytest.approx(float(reference[name]), rel=0.05)
