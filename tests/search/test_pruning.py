"""schuBERT gates: ones change nothing, zeroed units delete exactly, β matches the paper's BERT-base
values, and the chosen removals meet the cost target."""

from __future__ import annotations

import pytest
import torch

from bertsmith.arch import ArchSpec
from bertsmith.data.tasktypes import CLASSIFICATION
from bertsmith.errors import ConfigError
from bertsmith.modeling import BertsmithForSequenceClassification
from bertsmith.search.pruning import (
    GatedModel,
    GateObjective,
    Gates,
    choose_removals,
    cost_function,
    prune,
    smallest,
    unit_costs,
)

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
        f"gates.alpha.{k}" for k in gated.gates.alpha
    )


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
    assert (layers[1].attention.heads, layers[0].attention.qk_dim, layers[1].attention.v_dim, layers[0].ffn.size) == (
        2,
        3,
        4,
        13,
    )
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


def test_a_zero_gated_layer_is_deleted_and_the_others_kept():
    m = model()
    gates = Gates(m.encoder.spec, ("f",), layers=True)
    with torch.no_grad():
        gates.alpha["l"][0] = 0.0
    cost = cost_function("params")
    spec = gates.spec
    one_head_less = spec.replace(
        layers=[
            spec.layers[0].model_copy(update={"attention": spec.layers[0].attention.model_copy(update={"heads": 2})}),
            spec.layers[1],
        ]
    )
    beta_layer = (cost(spec) - cost(spec.replace(layers=spec.layers[1:]))) / (cost(spec) - cost(one_head_less))
    assert unit_costs(spec, cost)["l"][0] == pytest.approx(beta_layer)
    keep = choose_removals(gates, cost(gates.spec) - 1, cost)  # the zero gate goes first: the whole layer
    assert keep.layers == [1]
    smaller = prune(m, gates, keep)
    assert smaller.encoder.spec.num_layers == 1
    torch.testing.assert_close(smaller.encoder.layers[0].ffn.up.weight, m.encoder.layers[1].ffn.up.weight)
    assert smallest(gates.spec, ("f",), layers=True).num_layers == 1
    assert smallest(gates.spec, ("f",)).layers[0].attention.heads == 3  # heads are not pruned by -f


def test_the_sparsity_penalty_pulls_the_gates_down(teacher_dir, task_file, cache_dir, tmp_path):
    """Gate training with γ > 0 lowers Σβ|α| (monotone in γ); the frozen weights do not move."""
    from bertsmith.data import resolve_task
    from bertsmith.distill.task import load_task_data, load_tokenizer, train_on_task
    from bertsmith.distill.teacher import load_teacher
    from bertsmith.distill.trainer import TrainConfig

    task = resolve_task(task_file)
    teacher = load_teacher(teacher_dir, task).eval()
    data = load_task_data(
        task, load_tokenizer(teacher_dir, teacher.encoder.spec, 16), data_dir=None, max_length=16, cache_dir=cache_dir
    )
    cost = cost_function("params")
    remaining = {}
    for gamma in (0.0, 5.0):
        student = load_teacher(teacher_dir, task)
        gated = GatedModel(student)
        betas = unit_costs(gated.gates.spec, cost)
        objective = GateObjective(gated, teacher, betas, gamma=gamma, task_type=CLASSIFICATION)
        config = TrainConfig(steps=15, lr=0.02, batch_size=16, weight_decay=0.0, warmup=0.0, schedule="constant")
        train_on_task(
            objective,
            data,
            config=config,
            run_dir=tmp_path / str(gamma),
            resume=False,
            fingerprint={},
            progress=False,
            keep_best=False,
        )
        with torch.no_grad():
            remaining[gamma] = float(gated.gates.penalty(betas)) / objective.scale
        torch.testing.assert_close(student.encoder.layers[0].ffn.up.weight, teacher.encoder.layers[0].ffn.up.weight)
    assert remaining[5.0] < 0.95 and remaining[5.0] < remaining[0.0]
