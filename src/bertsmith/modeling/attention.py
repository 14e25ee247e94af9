"""Multi-head self-attention (``mhsa``) through ``scaled_dot_product_attention``, post-LN.

Query/key head dim k and value head dim v are independent of hidden/heads (schuBERT's expansive
attention). Q, K and V come from one fused projection. The class also carries its kind's rules and
exact parameter and FLOP formulas (``bertsmith.kinds.KindModule``); the kind's spec fields are
``bertsmith.kinds.mhsa``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fast import dropout_add, dropout_p, tracing


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, heads·d] → [B, heads, T, d] (a view)."""
    b, t, _ = x.shape
    return x.view(b, t, heads, -1).transpose(1, 2)


def attention_scores(q: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Pre-softmax scores QKᵀ/√k [B, a, T, T] of [B, a, T, k] heads, the additive mask added."""
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), key.transpose(-1, -2))
    return scores + mask if mask is not None else scores


class SelfAttention(nn.Module):
    """x → LN(x + dropout(W_o · SDPA(Q, K, V))) with Q, K ∈ R^{a×k}, V ∈ R^{a×v} per token."""

    def __init__(self, spec, hidden: int, *, eps: float, dropout: float, attention_dropout: float):
        super().__init__()
        a, k, v = spec.heads, spec.qk_dim, spec.v_dim
        self.heads, self.qk_dim, self.v_dim = a, k, v
        self.qkv = nn.Linear(hidden, a * (2 * k + v))
        self.out = nn.Linear(a * v, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = attention_dropout

    def attend(self, q, key, value, mask, want_scores: bool):
        """Context [B,T,a·v]; with ``want_scores`` also the pre-softmax scores [B,a,T,T] (mask added).

        SDPA's fused kernel by default. The explicit softmax(QKᵀ/√k + mask)·V instead when the scores
        are wanted (computed once rather than twice), or when attention dropout runs eagerly on CPU
        (SDPA's CPU kernels have no dropout and fall back to a math path with extra copies and
        ``bernoulli_``). Both compute the same function (to float rounding).
        """
        p = self.attention_dropout if self.training else 0.0
        b, _, t, _ = q.shape
        if not want_scores and (p == 0.0 or q.device.type != "cpu" or tracing()):
            ctx = F.scaled_dot_product_attention(q, key, value, attn_mask=mask, dropout_p=p)
            return ctx.transpose(1, 2).reshape(b, t, -1), None
        scores = attention_scores(q, key, mask)
        ctx = torch.matmul(dropout_p(torch.softmax(scores, dim=-1), p, True), value)
        return ctx.transpose(1, 2).reshape(b, t, -1), (scores if want_scores else None)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, want_scores: bool = False):
        a, k, v = self.heads, self.qk_dim, self.v_dim
        q, key, value = self.qkv(x).split([a * k, a * k, a * v], dim=-1)
        ctx, scores = self.attend(split_heads(q, a), split_heads(key, a), split_heads(value, a), mask, want_scores)
        return self.norm(dropout_add(x, self.out(ctx), self.dropout)), scores

    # ---- the kind's contract with ArchSpec and the cost model -------------------------------
    @staticmethod
    def problem(spec, hidden: int) -> str | None:
        """Why ``spec`` cannot be built in a model of width ``hidden`` (field: message), or None."""
        return None

    @staticmethod
    def count_params(spec, hidden: int) -> int:
        a, k, v = spec.heads, spec.qk_dim, spec.v_dim
        return (hidden + 1) * a * (2 * k + v) + (a * v + 1) * hidden + 2 * hidden

    @staticmethod
    def count_flops(spec, hidden: int, seq_len: int) -> int:
        """2·MACs: projections, QKᵀ scores, scores·V."""
        a, k, v, t = spec.heads, spec.qk_dim, spec.v_dim, seq_len
        proj = t * hidden * a * (2 * k + v) + t * a * v * hidden
        return 2 * (proj + a * t * t * (k + v))
