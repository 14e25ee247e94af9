"""Exact costs: parameter counts equal the built module's, schuBERT's budgets, FLOP formula checks."""

from __future__ import annotations

import pytest

from bertsmith import cost, presets
from bertsmith.modeling import BertsmithModel

from .conftest import KIND_GRID, tiny_spec


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("attention,ffn,per_layer", KIND_GRID)
def test_params_equal_the_built_module(attention, ffn, per_layer):
    spec = tiny_spec(attention, ffn, per_layer)
    assert cost.params(spec) == n_params(BertsmithModel(spec))


@pytest.mark.parametrize("embeddings", [{"size": 16}, {"size": 16, "trigram": True}, {"type_vocab_size": 0}])
@pytest.mark.parametrize("pooler", [True, False])
def test_params_with_embedding_variants(embeddings, pooler):
    spec = tiny_spec("mhsa", "dense", True, embeddings=embeddings, pooler=pooler)
    assert cost.params(spec) == n_params(BertsmithModel(spec))


def test_params_with_a_relative_position_bias_count_one_table_of_the_most_heads():
    spec = tiny_spec("mhsa", "dense", True, relative_attention_buckets=32)  # layers of 2 and 3 heads
    assert cost.params(spec) == n_params(BertsmithModel(spec)) == cost.params(tiny_spec("mhsa", "dense", True)) + 32 * 3
    assert cost.flops(spec) == cost.flops(tiny_spec("mhsa", "dense", True))


@pytest.mark.parametrize(
    "name", ["bert-base", "minilm-l6", "schubert-99m", "bort", "convbert-medium-small", "efficientbert"]
)
def test_params_equal_the_built_module_for_presets(name):
    spec = presets.get(name)
    assert cost.params(spec) == n_params(BertsmithModel(spec))


@pytest.mark.parametrize(
    "name,millions", [("schubert-77m", 77.4), ("schubert-66m", 66.3), ("schubert-55m", 55.5), ("schubert-43m", 43.2)]
)
def test_schubert_budgets(name, millions):
    """the schuBERT paper: 12 layers, only h shrunk, vocab 30,522, pooler included."""
    assert round(cost.params(presets.get(name)) / 1e6, 1) == millions


def test_published_sizes():
    assert round(cost.params(presets.get("bert-base")) / 1e6, 1) == 109.5
    assert cost.params(presets.get("minilm-l6")) == 22_713_216  # the real checkpoint's count
    # EfficientBERT's own accounting (the EfficientBERT paper) is 15.74M including fit_dense 540→768 (415,488).
    assert round((cost.params(presets.get("efficientbert")) + 540 * 768 + 768) / 1e6, 2) == 15.74


def test_flops_of_bert_base_by_hand():
    """12 layers × (4·T·h² projections + 2·T²·h attention + 2·T·h·4h FFN) MACs, ×2, plus the pooler."""
    t, h, L = 128, 768, 12
    macs = L * (4 * t * h * h + 2 * t * t * h + 2 * t * h * 4 * h) + h * h
    assert cost.flops(presets.get("bert-base"), t) == 2 * macs


def test_flops_grow_with_sequence_length_and_quadratically_in_attention():
    spec = presets.get("bert-mini")
    f64, f128, f256 = (cost.flops(spec, t) for t in (64, 128, 256))
    assert f64 < f128 < f256
    assert (f256 - f128) > (f128 - f64)  # the T² term of attention


def test_grouped_ffn_divides_ffn_cost():
    dense = tiny_spec("mhsa", "dense", False)
    grouped = tiny_spec("mhsa", "grouped", False)  # groups = 2
    d = cost.breakdown(dense)[2]
    g = cost.breakdown(grouped)[2]
    assert g.flops * 2 == d.flops


def test_breakdown_sums_to_totals():
    spec = presets.get("convbert-small")
    rows = cost.breakdown(spec, 64)
    assert sum(r.params for r in rows) == cost.params(spec)
    assert sum(r.flops for r in rows) == cost.flops(spec, 64)
    assert len(rows) == 1 + 2 * spec.num_layers
