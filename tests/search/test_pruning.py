"""schuBERT gates: ones change nothing, zeroed units delete exactly, β matches the paper's BERT-base
values, and the chosen removals meet the cost target."""

from __future__ import annotations

import pytest
import torch

from bertsmith.arch import ArchSpec
from bertsmith.errors import ConfigError
from bertsmith.modeling import BertsmithForSequenceClassification
from bertsmith.search.pruning import GatedModel, Gates, choose_removals, cost_function, prune, unit_costs

EMB = {"vocab_size": 97, "max_positions": 40}


def model(seed: int = 0) -> BertsmithForSequenceClassification:
    torch.manual_seed(seed)
    spec = ArchSpec.uniform(layers=2, hidden=24, heads=3, qk_dim=4, v_dim=6, ffn=20, embeddings=EMB)
    m = BertsmithForSequenceClassification(spec, num_labels=2).eval()
    with torch.no_grad():
        for layer in m.encoder.layers:
            layer.attention.qkv.weight *= 30  # peaked attention, so that a wrong scale would show
    return m


def inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 97, (2, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


def test_gates_at_one_change_nothing():
    m = model()
    gated = GatedModel(m)
    torch.testing.assert_close(gated(*inputs())[0], m(*inputs())[0])
    assert all(not p.requires_grad for p in gated.model.parameters())
    assert {n for n, p in gated.named_parameters() if p.requires_grad} == set(
        f"gates.alpha.{k}" for k in gated.gates.alpha)


def test_zeroed_units_are_deleted_exactly():
    m = model()
    gated = GatedModel(m, dims=("a", "k", "v", "f"))
    torch.manual_seed(3)
    with torch.no_grad():
        for alpha in gated.gates.alpha.values():
            alpha.uniform_(0.5, 1.5)
        gated.gates.alpha["a1"][1] = 0
        gated.gates.alpha["k0"][2] = 0
        gated.gates.alpha["v1"][[0, 4]] = 0
        gated.gates.alpha["f0"][:7] = 0
    before = gated(*inputs())[0]
    cost = cost_function("params")
    # under the raw |α| ranking the zeros go first, so this target removes exactly them
    keep = choose_removals(gated.gates, _cost_after_zeros(gated.gates, cost), cost)
    smaller = prune(m, gated.gates, keep)
    layers = smaller.encoder.spec.layers
    assert (layers[1].attention.heads, layers[0].attention.qk_dim, layers[1].attention.v_dim, layers[0].ffn.size) \
        == (2, 3, 4, 13)
    torch.testing.assert_close(smaller(*inputs())[0], before, rtol=1e-4, atol=1e-5)


def _cost_after_zeros(gates: Gates, cost) -> float:
    from bertsmith.modeling.elastic import Units

    keep = Units.all(gates.spec)
    fields = {"a": "heads", "k": "qk", "v": "v", "f": "neurons"}
    for key, alpha in gates.alpha.items():
        getattr(keep, fields[key[0]])[int(key[1:])] = torch.nonzero(alpha).flatten()
    return cost(keep.spec_of(gates.spec))


def test_betas_match_the_papers_bert_base_values():
    bert = ArchSpec.uniform(layers=12, hidden=768, heads=12, ffn=3072)
    beta = unit_costs(bert, cost_function("total_params"))  # the paper counts the embeddings
    assert beta["a"][0] == 1.0
    assert beta["h"][0] == pytest.approx(0.73, abs=0.01)
    assert unit_costs(bert, cost_function("params"))["h"][0] == pytest.approx(0.57, abs=0.01)
    assert beta["k"][5] == pytest.approx(0.0938, abs=1e-3) and beta["v"][5] == pytest.approx(0.0938, abs=1e-3)
    assert beta["f"][11] == pytest.approx(0.0078, abs=2e-4)
    flops_beta = unit_costs(bert, cost_function("flops", seq_len=128))
    assert flops_beta["k"][0] != beta["k"][0]  # FLOPs weigh the T² attention terms too


@pytest.mark.parametrize("ranking", ["raw", "weighted"])
def test_removals_meet_the_target_and_keep_one_unit_each(ranking):
    m = model()
    gates = Gates(m.encoder.spec)
    torch.manual_seed(0)
    with torch.no_grad():
        for alpha in gates.alpha.values():
            alpha.uniform_(0, 1)
    cost = cost_function("params")
    full = cost(gates.spec)
    for share in (0.9, 0.5, 0.2):
        keep = choose_removals(gates, share * full, cost, ranking=ranking)
        spec = keep.spec_of(gates.spec)
        assert cost(spec) <= share * full
        assert min(la.attention.heads for la in spec.layers) >= 1 and spec.hidden >= 1
    with pytest.raises(ConfigError, match="below the smallest model"):
        choose_removals(gates, 10, cost, ranking=ranking)


def test_rankings_differ_by_cost():
    """With every |α| equal, the β-weighted ranking removes the cheapest units first: FFN neurons
    (the smallest β), so the hidden size and the heads stay."""
    gates = Gates(model().encoder.spec)
    cost = cost_function("params")
    keep = choose_removals(gates, cost(gates.spec) * 0.95, cost, ranking="weighted")
    spec = keep.spec_of(gates.spec)
    assert spec.hidden == 24 and all(la.attention.heads == 3 for la in spec.layers)
    assert sum(la.ffn.size for la in spec.layers) < 40


def test_bad_gate_settings():
    spec = model().encoder.spec
    with pytest.raises(ConfigError, match="pruned dimensions"):
        Gates(spec, dims=("h", "depth"))
    with pytest.raises(ConfigError, match="cost 'joules': expected params, total_params or flops"):
        cost_function("joules")
    with pytest.raises(ConfigError, match="ranking 'loudest'"):
        choose_removals(Gates(spec), 1e9, cost_function("params"), ranking="loudest")
