"""Encoder modules: shapes, backward, outputs on request, and reference checks of each kind."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bertsmith.arch import ArchSpec
from bertsmith.modeling import BertsmithForMaskedLM, BertsmithForSequenceClassification, BertsmithModel
from bertsmith.modeling.mixed_attention import MixedAttention

from ..conftest import HIDDEN, KIND_GRID, tiny_spec


def batch(spec, b=3, t=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, spec.embeddings.vocab_size, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, 7:] = 0
    ids[1, 7:] = spec.embeddings.pad_token_id
    return ids, mask


@pytest.mark.parametrize("attention,ffn,per_layer", KIND_GRID)
def test_shapes_outputs_and_backward(attention, ffn, per_layer):
    torch.manual_seed(0)
    spec = tiny_spec(attention, ffn, per_layer)
    ids, mask = batch(spec)
    model = BertsmithForSequenceClassification(spec, num_labels=3)
    logits, out = model(ids, mask, output_hidden_states=True, output_attentions=True)
    assert logits.shape == (3, 3)
    assert out.last_hidden_state.shape == (3, 11, HIDDEN)
    assert len(out.hidden_states) == spec.num_layers + 1
    assert [s.shape for s in out.attentions] == [(3, layer.attention.heads, 11, 11) for layer in spec.layers]
    logits.logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("attention,ffn,per_layer", [p for p in KIND_GRID if p.values[0] == "mhsa"])
def test_padding_does_not_change_real_tokens(attention, ffn, per_layer):
    """With self-attention only, extra masked padding leaves the real tokens' outputs unchanged.
    (ConvBERT's conv branch is not masked, as in the original, so mixed layers are excluded.)"""
    torch.manual_seed(0)
    spec = tiny_spec(attention, ffn, per_layer)
    model = BertsmithModel(spec).eval()
    ids = torch.randint(1, spec.embeddings.vocab_size, (1, 8))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 8), torch.zeros(1, 4)], dim=1)
    a = model(ids).last_hidden_state
    b = model(padded, mask).last_hidden_state[:, :8]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_attention_scores_are_the_pre_softmax_scores():
    torch.manual_seed(0)
    spec = tiny_spec("mhsa", "dense", True, hidden_dropout=0.0, attention_dropout=0.0)
    model = BertsmithModel(spec).eval()
    ids, mask = batch(spec)
    out = model(ids, mask, output_hidden_states=True, output_attentions=True)
    att = model.layers[0].attention
    x = out.hidden_states[0]
    q, k, v = att.qkv(x).split([att.heads * att.qk_dim] * 2 + [att.heads * att.v_dim], dim=-1)
    q = q.view(3, 11, att.heads, att.qk_dim).transpose(1, 2)
    k = k.view(3, 11, att.heads, att.qk_dim).transpose(1, 2)
    v = v.view(3, 11, att.heads, att.v_dim).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(att.qk_dim)
    scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    torch.testing.assert_close(out.attentions[0], scores, atol=1e-4, rtol=1e-4)
    ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 11, -1)
    expected = att.norm(x + att.out(ctx))
    assert out.attentions[0].shape == (3, att.heads, 11, 11)
    torch.testing.assert_close(
        model.layers[0].attention(x, None if mask.all() else (1.0 - mask[:, None, None, :].float()) * -3.4e38)[0],
        expected,
        atol=1e-5,
        rtol=1e-5,
    )


def reference_span_conv(att: MixedAttention, x: torch.Tensor) -> torch.Tensor:
    """The conv branch written tap by tap from the ConvBERT paper (no unfold): for every token and conv
    head, softmax(W_f(Q ⊙ K_s)) weights the head's V' values at offsets −k//2 … k//2."""
    b, t, h = x.shape
    a, k, v, c, kernel = att.heads, att.qk_dim, att.v_dim, att.conv_heads, att.kernel
    q, _, _, v_conv = att.qkv(x).split([a * k, a * k, a * v, c * v], dim=-1)
    span_key = F.conv1d(x.transpose(1, 2), att.depthwise.weight, padding=kernel // 2, groups=h)
    span_key = F.conv1d(span_key, att.pointwise.weight).transpose(1, 2) + att.conv_bias
    weights = att.conv_kernel(q * span_key).view(b, t, c, kernel).softmax(-1)
    v_conv = v_conv.view(b, t, c, v)
    out = torch.zeros(b, t, c, v)
    for i in range(t):
        for j in range(kernel):
            src = i + j - kernel // 2
            if 0 <= src < t:
                out[:, i] += weights[:, i, :, j, None] * v_conv[:, src]
    return out.reshape(b, t, c * v)


@pytest.mark.parametrize("head_ratio,kernel", [(2, 3), (3, 5)])
def test_mixed_attention_conv_branch_matches_tap_by_tap_reference(head_ratio, kernel):
    torch.manual_seed(0)
    spec = ArchSpec.uniform(
        layers=1,
        hidden=32,
        heads=2,
        ffn=64,
        qk_dim=6,
        v_dim=5,
        attention="mixed",
        conv_kernel=kernel,
        head_ratio=head_ratio,
        embeddings={"vocab_size": 50},
    )
    att = BertsmithModel(spec).layers[0].attention.eval()
    x = torch.randn(2, 9, 32)
    captured = {}
    att.out.register_forward_pre_hook(lambda m, inp: captured.update(cat=inp[0]))
    att(x, None)
    conv = captured["cat"][..., att.heads * att.v_dim :]
    torch.testing.assert_close(conv, reference_span_conv(att, x), atol=1e-5, rtol=1e-5)


def test_searched_ffn_with_the_bert_expression_equals_a_dense_ffn():
    torch.manual_seed(0)
    common = dict(layers=2, hidden=32, heads=4, ffn=64, embeddings={"vocab_size": 50})
    dense = BertsmithModel(ArchSpec.uniform(**common)).eval()
    searched = BertsmithModel(ArchSpec.uniform(**common, ffn_kind="searched", expression="L(gelu(L(x)))")).eval()
    state = {}
    for name, value in dense.state_dict().items():
        name = name.replace("ffn.up", "ffn.blocks.0.lin1").replace("ffn.down", "ffn.blocks.0.lin2")
        state[name.replace("ffn.norm", "ffn.blocks.0.norm")] = value
    searched.load_state_dict(state)
    ids = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(searched(ids).last_hidden_state, dense(ids).last_hidden_state)


def test_grouped_linear_is_block_diagonal():
    from bertsmith.modeling.ffn import GroupedLinear

    torch.manual_seed(0)
    lin = GroupedLinear(8, 12, 2)
    x = torch.randn(3, 5, 8)
    w = torch.block_diag(*lin.weight)  # [8, 12]
    torch.testing.assert_close(lin(x), x @ w + lin.bias)


@pytest.mark.parametrize(
    "embeddings", [{"size": 16}, {"size": 16, "trigram": True}, {"positions": "roberta", "pad_token_id": 1}]
)
def test_masked_lm_ties_decoder_to_embeddings(embeddings):
    spec = tiny_spec("mhsa", "dense", False, embeddings=embeddings)
    model = BertsmithForMaskedLM(spec)
    ids, mask = batch(spec)
    logits, _ = model(ids, mask)
    assert logits.shape == (3, 11, spec.embeddings.vocab_size)
    assert model.decoder.weight is model.encoder.embeddings.word.weight


def test_regression_head_has_one_output_and_no_pooler_head_uses_first_token():
    spec = tiny_spec("mixed", "grouped", False, pooler=False)
    model = BertsmithForSequenceClassification(spec, num_labels=1)
    ids, mask = batch(spec)
    logits, out = model(ids, mask)
    assert logits.shape == (3, 1) and out.pooler_output is None
    assert model.head.dense is not None
