"""Distillation losses against reference formulas and their invariances."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bertsmith.distill import losses as L


def _logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kl_matches_torch_kl_div(temperature):
    s, t = _logits(5, 7), _logits(5, 7, seed=1)
    ref = F.kl_div(F.log_softmax(s / temperature, -1), F.softmax(t / temperature, -1), reduction="batchmean")
    assert torch.allclose(L.kl_div(s, t, temperature), ref * temperature**2, atol=1e-6)
    assert L.kl_div(t, t, temperature).abs() < 1e-6


def test_soft_cross_entropy_is_kl_plus_teacher_entropy():
    s, t = _logits(4, 3), _logits(4, 3, seed=2)
    p = F.softmax(t, -1)
    entropy = -(p * F.log_softmax(t, -1)).sum(-1).mean()
    assert torch.allclose(L.soft_cross_entropy(s, t), L.kl_div(s, t) + entropy, atol=1e-6)


def _pad(x, n, value):
    """Append n padding positions (time axis 1) filled with ``value`` noise."""
    extra = torch.randn(x.shape[0], n, *x.shape[2:]) * value
    return torch.cat([x, extra], dim=1)


def test_hidden_mse_ignores_padding_and_uses_projection():
    s, t = torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    proj = torch.nn.Linear(4, 6)
    mask = torch.ones(2, 5, dtype=torch.long)
    base = L.hidden_mse(s, t, mask, proj)
    ref = F.mse_loss(proj(s), t)
    assert torch.allclose(base, ref, atol=1e-6)
    padded = L.hidden_mse(
        _pad(s, 3, 10), _pad(t, 3, 10), torch.cat([mask, torch.zeros(2, 3, dtype=torch.long)], 1), proj
    )
    assert torch.allclose(base, padded, atol=1e-6)


def test_attention_score_mse_ignores_masked_keys_and_queries():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    changed_s, changed_t = s.clone(), t.clone()
    changed_s[0, :, :, 3] = 1e4  # masked key
    changed_t[0, :, 3, :] = -7.0  # masked query row
    assert torch.allclose(L.attention_score_mse(s, t, mask), L.attention_score_mse(changed_s, changed_t, mask))
    assert L.attention_score_mse(s, s, mask) == 0


def test_relation_kl_is_zero_under_a_rotation_within_heads():
    """Relations x·xᵀ do not change when each relation head's vectors are rotated."""
    heads, d = 2, 4
    t = torch.randn(3, 6, heads * d)
    q, _ = torch.linalg.qr(torch.randn(d, d))
    rotated = (t.view(3, 6, heads, d) @ q).view(3, 6, heads * d)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, 4:] = 0
    assert L.relation_kl(rotated, t, heads, mask).abs() < 1e-5
    assert L.relation_kl(torch.randn(3, 6, 16), t, heads, mask) > 0  # other widths work, relations differ


def test_relation_kl_equals_the_textbook_kl_of_softmax_relations():
    """Against KL(p_t ‖ p_s) written out with explicit softmaxes over the real keys, value and gradient."""
    torch.manual_seed(0)
    heads, mask = 4, torch.ones(3, 7, dtype=torch.long)
    mask[0, 5:], mask[2, 3:] = 0, 0
    s, t = torch.randn(3, 7, 8, requires_grad=True), torch.randn(3, 7, 12)

    def probabilities(x):
        b, n, d = x.shape
        xs = x.view(b, n, heads, d // heads).transpose(1, 2)
        scores = xs @ xs.transpose(-1, -2) / math.sqrt(d // heads)
        return torch.softmax(scores.masked_fill(mask[:, None, None, :] == 0, -math.inf), dim=-1)

    p_s, p_t = probabilities(s), probabilities(t)
    real = (mask[:, None, None, :] == 1).expand_as(p_t)  # log of 1 at masked keys, where p_t is 0
    terms = p_t * (torch.where(real, p_t, 1.0).log() - torch.where(real, p_s, 1.0).log())
    per_query = terms.sum(-1).mean(1)  # [B, T]
    reference = (per_query * mask).sum() / mask.sum()
    value = L.relation_kl(s, t, heads, mask)
    assert torch.allclose(value, reference, atol=1e-6)
    (g_value,), (g_reference,) = torch.autograd.grad(value, s), torch.autograd.grad(reference, s)
    assert torch.allclose(g_value, g_reference, atol=1e-6)


def test_relation_kl_ignores_padding():
    s, t = torch.randn(2, 5, 8), torch.randn(2, 5, 12)
    mask = torch.ones(2, 5, dtype=torch.long)
    base = L.relation_kl(s, t, 4, mask)
    padded_mask = torch.cat([mask, torch.zeros(2, 2, dtype=torch.long)], 1)
    assert torch.allclose(base, L.relation_kl(_pad(s, 2, 5), _pad(t, 2, 5), 4, padded_mask), atol=1e-5)


@pytest.mark.parametrize(
    ("widths", "preferred", "expected"),
    [([64, 64, 32], 12, 8), ([384, 128], 12, 8), ([384, 384], 12, 12), ([30, 45], 12, 5)],
)
def test_relation_heads(widths, preferred, expected):
    assert L.relation_heads(widths, preferred) == expected


def test_mlm_distillation_takes_one_softmax_over_masked_positions():
    s, t = _logits(2, 5, 11), _logits(2, 5, 11, seed=3)
    labels = torch.full((2, 5), L.IGNORE_INDEX)
    labels[0, 1], labels[1, 3] = 4, 9
    ce, kd = L.mlm_distillation(s, t, labels, temperature=2.0)
    rows_s, rows_t = torch.stack([s[0, 1], s[1, 3]]), torch.stack([t[0, 1], t[1, 3]])
    assert torch.allclose(ce, F.cross_entropy(rows_s, torch.tensor([4, 9])))
    ref = F.kl_div(F.log_softmax(rows_s / 2, -1), F.softmax(rows_t / 2, -1), reduction="batchmean") * 4
    assert torch.allclose(kd, ref, atol=1e-6)
    double = (
        F.kl_div(F.log_softmax(F.softmax(rows_s / 2, -1), -1), F.softmax(rows_t / 2, -1), reduction="batchmean") * 4
    )
    assert not torch.allclose(kd, double, atol=1e-3)  # Bort's MXNet quirk is not reproduced


def test_mask_tokens_never_masks_special_tokens():
    ids = torch.randint(5, 100, (64, 50))
    special = torch.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    masked, labels = L.mask_tokens(ids, special, mask_id=3, vocab_size=100, generator=torch.Generator().manual_seed(0))
    picked = labels.ne(L.IGNORE_INDEX)
    assert not picked[special.bool()].any()
    assert 0.12 < picked.float().mean() < 0.18
    assert torch.equal(labels[picked], ids[picked])
    assert torch.equal(masked[~picked], ids[~picked])
    assert 0.7 < masked[picked].eq(3).float().mean() < 0.9


@pytest.mark.parametrize(
    ("student", "teacher", "expected"),
    [(4, 12, [3, 6, 9, 12]), (6, 6, [1, 2, 3, 4, 5, 6]), (3, 6, [2, 4, 6]), (2, 3, [2, 3])],
)
def test_default_layer_map(student, teacher, expected):
    assert L.default_layer_map(student, teacher) == expected
