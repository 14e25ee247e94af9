"""Distillation losses, as plain functions of tensors.

Shapes: logits [N, C] (sequence tasks) or [B, T, V] (masked LM); hidden states [B, T, H]; attention
scores [B, a, T, T] as the encoder returns them (pre-softmax, with the additive mask added);
``mask`` is the [B, T] 1/0 attention mask. Token-level losses average over real tokens only, so the
padding of a batch never changes a loss (bertsmith's choice; TinyBERT's code averages over padding
too).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label of the positions a masked-LM loss skips


def kl_div(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T²·KL(softmax(t/T) ‖ softmax(s/T)), averaged over rows (the T² keeps gradients comparable
    across temperatures, as in Hinton et al.)."""
    t = temperature
    log_p_s = F.log_softmax(student.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher.float() / t, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return kl.mean() * t * t


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """−Σ softmax(t/T)·log softmax(s/T), averaged over rows (EfficientBERT's prediction loss, T=1).
    Differs from ``kl_div`` by the teacher's entropy (a constant) and the T² factor."""
    t = temperature
    p_t = F.softmax(teacher.float() / t, dim=-1)
    return -(p_t * F.log_softmax(student.float() / t, dim=-1)).sum(-1).mean()


def logits_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between predictions (regression tasks)."""
    return F.mse_loss(student.float(), teacher.float())


def _token_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-token values [B, T] over the tokens where ``mask`` is 1."""
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def hidden_mse(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None, project: torch.nn.Module | None = None
) -> torch.Tensor:
    """MSE(H_t, W·H_s) per element, averaged over real tokens; ``project`` maps student width to
    teacher width when they differ (TinyBERT's W_h, EfficientBERT's fit_dense)."""
    s = project(student) if project is not None else student
    per_token = (s.float() - teacher.float()).pow(2).mean(-1)
    return _token_mean(per_token, mask)


def attention_score_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """MSE between pre-softmax attention scores of layers with equal head counts (TinyBERT,
    EfficientBERT §3.5). Scores at masked keys are set to 0 in both, as in those codes; the mean
    runs over real query tokens."""
    s, t = student.float(), teacher.float()
    if mask is not None:
        keep = mask[:, None, None, :].bool()
        s, t = s.masked_fill(~keep, 0.0), t.masked_fill(~keep, 0.0)
    per_query = (s - t).pow(2).mean(dim=(1, 3))  # [B, T]
    return _token_mean(per_query, mask)


def relations(x: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    """MiniLMv2 self-attention relations of one of Q, K or V: the [B, T, D] vectors are split into
    ``heads`` relation heads of D/heads and each gives log softmax(x·xᵀ/√d) over the real keys,
    [B, heads, T, T]. Every pass over a T×T tensor counts at long sequences, so the scale is applied
    to x (d^-1/4 on each side) and padded keys get, in place, a bias that exp takes to exactly 0."""
    b, t, d = x.shape
    xs = (x.float() * (d // heads) ** -0.25).view(b, t, heads, d // heads).transpose(1, 2)
    scores = torch.matmul(xs, xs.transpose(-1, -2))
    if mask is not None and not bool(mask.all()):
        scores.add_((mask[:, None, None, :] == 0).float() * (torch.finfo(scores.dtype).min / 2))
    return F.log_softmax(scores, dim=-1)


def relation_kl(student: torch.Tensor, teacher: torch.Tensor, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    """KL(teacher relation ‖ student relation) of Q-Q, K-K or V-V (MiniLMv2, Wang et al. 2021):
    works for any head counts and widths, because both sides are re-split into the same number of
    relation heads. Summed over keys, averaged over relation heads and real query tokens.

    Computed as Σ p_t·log p_t − Σ p_t·log p_s, the teacher's side without gradients; masked keys
    add 0 to both sums (p_t is 0 there)."""
    with torch.no_grad():
        log_t = relations(teacher, heads, mask)
        p_t = log_t.exp()
        entropy = log_t.mul_(p_t).sum(-1)
    kl = entropy - torch.linalg.vecdot(p_t, relations(student, heads, mask))
    return _token_mean(kl.mean(1), mask)


def relation_heads(widths: list[int], preferred: int) -> int:
    """The largest relation-head count ≤ ``preferred`` that divides every Q/K/V width."""
    g = 0
    for w in widths:
        g = math.gcd(g, w)
    return max(r for r in range(1, max(1, min(preferred, g)) + 1) if g % r == 0)


def mlm_distillation(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 2.0,
    mlm_weight: float = 0.1,
    kd_weight: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bort's masked-LM distillation (the Bort paper): mlm_weight·CE(student, labels) +
    kd_weight·T²·KL(softmax(t/T) ‖ softmax(s/T)), over the masked positions only (labels ≠ −100).

    Unlike Bort's MXNet code, the student's term is log softmax(z_s/T), taken once: the released
    code passes probabilities where its KL loss expects logits, which softmaxes twice. Returns
    (masked-LM cross-entropy, KL term) unweighted."""
    picked = labels.ne(IGNORE_INDEX)
    s, t = student[picked], teacher[picked]
    if s.numel() == 0:
        zero = student.sum() * 0.0
        return zero, zero
    ce = F.cross_entropy(s.float(), labels[picked])
    return ce, kl_div(s, t, temperature)


def mask_tokens(
    input_ids: torch.Tensor,
    special: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick ``probability`` of the non-special tokens; of those 80 % become
    [MASK], 10 % a random token, 10 % stay. Returns (masked ids, labels with −100 elsewhere)."""
    u = torch.rand(input_ids.shape, generator=generator)
    picked = (u < probability) & ~special.bool()
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    v = torch.rand(input_ids.shape, generator=generator)
    ids = input_ids.clone()
    ids[picked & (v < 0.8)] = mask_id
    rand = picked & (v >= 0.8) & (v < 0.9)
    ids[rand] = torch.randint(vocab_size, input_ids.shape, generator=generator)[rand]
    return ids, labels


def default_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher layer (1-based, as in ``hidden_states``) for each student layer 1..L_s: evenly
    spaced, ending at the teacher's last layer (TinyBERT's m(i) = i·L_t/L_s, rounded)."""
    return [max(1, round((i + 1) * teacher_layers / student_layers)) for i in range(student_layers)]
