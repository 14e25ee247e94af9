"""ConvBERT mixed attention (``mixed``): self-attention heads beside span-based dynamic convolution heads.

As in the official code and transformers' ConvBertSelfAttention (the ConvBERT paper):
K_s = SepConv_k(X) (depthwise conv of width k, pointwise projection, bias); the kernel of each conv
head is softmax_k(W_f (Q ⊙ K_s)) per token; it is applied as a lightweight convolution to a separate
value projection V' = X W_v'. The attention and conv outputs are concatenated (attention heads
first) and go through one output dense, dropout, residual and LayerNorm. The padding mask applies to
the attention branch only. bertsmith generalises the head ratio γ: ``heads`` attention heads and
heads·(γ−1) conv heads; γ = 2 is ConvBERT's (and transformers') layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SelfAttention, split_heads
from .fast import dropout_add


class MixedAttention(SelfAttention):
    def __init__(self, spec, hidden: int, *, eps: float, dropout: float, attention_dropout: float):
        nn.Module.__init__(self)
        a, k, v = spec.heads, spec.qk_dim, spec.v_dim
        c, kernel = spec.heads * (spec.head_ratio - 1), spec.conv_kernel
        self.heads, self.qk_dim, self.v_dim, self.conv_heads, self.kernel = a, k, v, c, kernel
        # Q, K, V of the attention heads and V' of the conv heads in one projection.
        self.qkv = nn.Linear(hidden, a * (2 * k + v) + c * v)
        self.depthwise = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden, bias=False)
        self.pointwise = nn.Conv1d(hidden, a * k, 1, bias=False)
        self.conv_bias = nn.Parameter(torch.zeros(a * k))
        self.conv_kernel = nn.Linear(a * k, c * kernel)
        self.out = nn.Linear((a + c) * v, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = attention_dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, want_scores: bool = False):
        b, t, _ = x.shape
        a, k, v, c, kernel = self.heads, self.qk_dim, self.v_dim, self.conv_heads, self.kernel
        q_raw, k_raw, v_raw, v_conv = self.qkv(x).split([a * k, a * k, a * v, c * v], dim=-1)
        heads = (split_heads(q_raw, a), split_heads(k_raw, a), split_heads(v_raw, a))
        ctx, scores = self.attend(*heads, mask, want_scores)

        span_key = self.pointwise(self.depthwise(x.transpose(1, 2))).transpose(1, 2) + self.conv_bias
        dyn = self.conv_kernel(q_raw * span_key).view(b, t, c, kernel, 1).softmax(dim=3)
        pad = (kernel - 1) // 2
        windows = F.pad(v_conv, (0, 0, pad, pad)).unfold(1, kernel, 1)  # [B, T, c·v, kernel]
        conv = torch.matmul(windows.reshape(b, t, c, v, kernel), dyn).reshape(b, t, c * v)

        out = self.out(torch.cat([ctx, conv], dim=-1))
        return self.norm(dropout_add(x, out, self.dropout)), scores

    @staticmethod
    def problem(spec, hidden: int) -> str | None:
        if spec.conv_kernel is None or spec.head_ratio is None:
            return "conv_kernel: kind 'mixed' needs conv_kernel and head_ratio"
        if spec.conv_kernel % 2 == 0:
            return f"conv_kernel: must be odd for a centred span, got {spec.conv_kernel}"
        return None

    @staticmethod
    def count_params(spec, hidden: int) -> int:
        a, k, v, kernel = spec.heads, spec.qk_dim, spec.v_dim, spec.conv_kernel
        c = a * (spec.head_ratio - 1)
        qkv = (hidden + 1) * (a * (2 * k + v) + c * v)
        sepconv = hidden * kernel + hidden * a * k + a * k
        dyn = (a * k + 1) * c * kernel
        return qkv + sepconv + dyn + ((a + c) * v + 1) * hidden + 2 * hidden

    @staticmethod
    def count_flops(spec, hidden: int, seq_len: int) -> int:
        """2·MACs: projections, attention scores and context, separable conv, kernel generation,
        the dynamic convolution."""
        a, k, v, kernel, t = spec.heads, spec.qk_dim, spec.v_dim, spec.conv_kernel, seq_len
        c = a * (spec.head_ratio - 1)
        proj = t * hidden * (a * (2 * k + v) + c * v) + t * (a + c) * v * hidden
        sepconv = t * hidden * kernel + t * hidden * a * k
        dyn = t * a * k * c * kernel + t * c * v * kernel
        return 2 * (proj + a * t * t * (k + v) + sepconv + dyn)
