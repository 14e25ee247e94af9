"""Slicing a model into a smaller ArchSpec: exact where units are removed, clear errors otherwise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bertsmith.arch import ArchSpec
from bertsmith.errors import SpecError
from bertsmith.modeling import BertsmithForQuestionAnswering, BertsmithForSequenceClassification, BertsmithModel
from bertsmith.modeling.elastic import even_layers, slice_weights

EMB = {"vocab_size": 97, "max_positions": 40}
# plain, factorized (tables and LayerNorm at 16, projected to the hidden size: ELECTRA, ConvBERT) and trigram
EMBEDDINGS = {
    "plain": EMB,
    "factorized": EMB | {"size": 16},
    "trigram": EMB | {"size": 16, "trigram": True},
    "projected-at-h": EMB | {"size": 32},
    "trigram-at-h": EMB | {"size": 32, "trigram": True},
}


def spec(layers=3, hidden=32, heads=4, qk=8, v=8, ffn=64, emb=EMB, **kw) -> ArchSpec:
    return ArchSpec.uniform(
        layers=layers, hidden=hidden, heads=heads, ffn=ffn, qk_dim=qk, v_dim=v, embeddings=emb, **kw
    )


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 97, (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    return ids, mask


def source_model(s: ArchSpec, cls=BertsmithModel):
    torch.manual_seed(0)
    model = cls(s) if cls is BertsmithModel else cls(s, num_labels=3)
    return model.eval()


def sliced(source, s_spec, t_spec, cls=BertsmithModel, layers=None):
    target = (cls(t_spec) if cls is BertsmithModel else cls(t_spec, num_labels=3)).eval()
    slice_weights(source, s_spec, target, t_spec, layers=layers)
    return target


def test_same_spec_reproduces_the_source():
    s = spec()
    source = source_model(s, BertsmithForSequenceClassification)
    target = sliced(source, s, s, BertsmithForSequenceClassification)
    with torch.no_grad():
        torch.testing.assert_close(target(*inputs())[0], source(*inputs())[0], rtol=0, atol=0)


@pytest.mark.parametrize("emb", list(EMBEDDINGS))
def test_fewer_heads_and_ffn_neurons_equal_the_source_with_those_units_removed(emb):
    s, t = spec(emb=EMBEDDINGS[emb]), spec(heads=2, ffn=40, emb=EMBEDDINGS[emb])
    source = source_model(s)
    target = sliced(source, s, t)
    with torch.no_grad():  # reference: zero what the slice drops (its contribution to the output)
        for layer in source.layers:
            layer.attention.out.weight[:, 2 * 8 :] = 0
            layer.ffn.down.weight[:, 40:] = 0
        torch.testing.assert_close(target(*inputs()).last_hidden_state, source(*inputs()).last_hidden_state)


def test_fewer_layers_equal_the_source_without_them():
    s, t = spec(layers=4), spec(layers=2)
    source = source_model(s)
    target = sliced(source, s, t, layers=[0, 3])
    with torch.no_grad():
        source.layers = torch.nn.ModuleList([source.layers[0], source.layers[3]])
        torch.testing.assert_close(target(*inputs()).last_hidden_state, source(*inputs()).last_hidden_state)


def test_narrower_dims_take_the_leading_channels_of_each_head():
    s, t = spec(), spec(hidden=24, heads=3, qk=4, v=6, ffn=48)
    source = source_model(s)
    target = sliced(source, s, t)
    src, dst = source.layers[2].attention.qkv.weight, target.layers[2].attention.qkv.weight
    assert dst.shape == (3 * (4 + 4 + 6), 24)
    q, k, v = (part.view(4, 8, 32) for part in src.split([32, 32, 32]))
    want = torch.cat([q[:3, :4].reshape(12, 32), k[:3, :4].reshape(12, 32), v[:3, :6].reshape(18, 32)])
    torch.testing.assert_close(dst, want[:, :24])
    out = source.layers[2].attention.out.weight.view(32, 4, 8)[:24, :3, :6].reshape(24, 18)
    torch.testing.assert_close(target.layers[2].attention.out.weight, out)
    torch.testing.assert_close(target.embeddings.word.weight, source.embeddings.word.weight[:, :24])
    assert target(*inputs()).last_hidden_state.isfinite().all()


def test_even_layers_end_at_the_last_source_layer():
    assert even_layers(4, 6) == [1, 2, 3, 5]
    assert even_layers(3, 12) == [3, 7, 11]
    assert even_layers(6, 6) == list(range(6))


@pytest.mark.parametrize(
    "target,layers,message",
    [
        (spec(hidden=48, heads=4, qk=12, v=12), None, "hidden: 48 is larger than the source's 32"),
        (spec(heads=6), None, "layers[0].attention.heads: 6 is larger than source layer 0's 4"),
        (spec(ffn=80), None, "layers[0].ffn.size: 80 is larger"),
        (spec(layers=2), [0, 5], "layers[1]: source layer 5 does not exist"),
        (spec(layers=2), [0], "layers: 1 source layers given for 2 target layers"),
        (spec(ffn_kind="grouped", groups=2), None, "layers[0].ffn.kind: slicing supports dense"),
        (spec(activation="relu"), None, "layers[0].ffn.activation"),
        (
            ArchSpec.uniform(layers=3, hidden=32, heads=4, ffn=64, embeddings={"vocab_size": 98, "max_positions": 40}),
            None,
            "embeddings: vocab_size",
        ),
    ],
)
def test_impossible_slices_name_the_dimension(target, layers, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        slice_weights(source_model(spec()), spec(), BertsmithModel(target), target, layers=layers)


def test_heads_with_a_different_number_of_labels_are_refused():
    s = spec()
    source = source_model(s, BertsmithForSequenceClassification)
    with pytest.raises(SpecError, match="head.out.weight: the source head has 3 outputs, the target 2"):
        slice_weights(source, s, BertsmithForSequenceClassification(s, num_labels=2), s)


def labelled_batches(n=3):
    out = []
    for seed in range(n):
        ids, mask = inputs(seed)
        out.append(
            {
                "input_ids": ids,
                "attention_mask": mask,
                "token_type_ids": torch.zeros_like(ids),
                "labels": torch.tensor([seed % 3, (seed + 1) % 3]),
            }
        )
    return out


@pytest.mark.parametrize(
    "pooler,emb",
    [
        (True, "plain"),
        (False, "plain"),
        (False, "factorized"),
        (True, "trigram"),
        (False, "projected-at-h"),
        (True, "trigram-at-h"),
    ],
)
def test_reordering_keeps_the_function_and_puts_important_units_first(pooler, emb):
    from bertsmith.modeling.elastic import importance, reorder

    s = spec(pooler=pooler, emb=EMBEDDINGS[emb])
    model = source_model(s, BertsmithForSequenceClassification)
    with torch.no_grad():  # a dead head and a dead neuron in layer 1: their Taylor scores are 0
        model.encoder.layers[1].attention.out.weight[:, 0:8] = 0
        model.encoder.layers[1].ffn.down.weight[:, 5] = 0
    before = model(*inputs())[0].detach()
    scores = importance(model, labelled_batches())
    assert scores.heads[1][0] == 0 and (scores.heads[1][1:] > 0).all()
    assert scores.neurons[1][5] == 0 and (scores.hidden > 0).all()
    assert all(p.grad is None for p in model.parameters()) and not model.training
    reorder(model, scores)
    torch.testing.assert_close(model(*inputs())[0], before)
    assert (model.encoder.layers[1].attention.out.weight[:, -8:] == 0).all()  # the dead head went last
    assert (model.encoder.layers[1].ffn.down.weight[:, -1] == 0).all()
    again = importance(model, labelled_batches())
    for new in (again.heads[0], again.neurons[2], again.hidden):
        assert (new[:-1] >= new[1:] - 1e-6 * new.max()).all()  # now sorted, most important first


def test_importance_keeps_no_activation_alive():
    """Every activation that importance watches is freed once it returns: a hook that held the tensor
    it was registered on once kept each batch's activations and graph alive (GBs on a real teacher)."""
    import gc
    import weakref

    from bertsmith.modeling.elastic import importance

    model = source_model(spec(), BertsmithForSequenceClassification)
    watched = []
    hooks = [
        norm.register_forward_hook(lambda _m, _a, out: watched.append(weakref.ref(out)))
        for norm in (model.encoder.embeddings.norm, *(layer.ffn.norm for layer in model.encoder.layers))
    ]
    importance(model, labelled_batches())
    for hook in hooks:
        hook.remove()
    gc.collect()
    assert len(watched) == 3 * 4 and all(ref() is None for ref in watched)  # 3 batches, 4 norms


def test_importance_needs_plain_kinds():
    from bertsmith.modeling.elastic import importance

    s = spec(ffn_kind="grouped", groups=2)
    with pytest.raises(SpecError, match="layers\\[0\\]: importance and reordering support mhsa"):
        importance(BertsmithForSequenceClassification(s, num_labels=3), labelled_batches())


@pytest.mark.parametrize("cls", [BertsmithModel, BertsmithForSequenceClassification])
def test_selecting_units_removes_exactly_the_dead_ones(cls):
    """Units whose weights are zero (a head, a query/key dim, a value dim, FFN neurons) contribute
    nothing, so the model without them computes the same function; keeping everything in a new
    order computes it too."""
    from bertsmith.modeling.elastic import Units, select_units

    s = spec(heads=3, qk=4, v=6, ffn=20)
    model = source_model(s, cls)
    enc = model.encoder if cls is not BertsmithModel else model
    a, k, v = 3, 4, 6
    with torch.no_grad():
        att, ffn = enc.layers[1].attention, enc.layers[1].ffn
        att.qkv.weight *= 30  # peaked attention: a wrong 1/√k scale after dropping a dim would show
        q_rows = [h * k + 2 for h in range(a)]  # query/key dim 2 of every head
        for rows in (q_rows, [a * k + r for r in q_rows]):
            att.qkv.weight[rows] = 0
            att.qkv.bias[rows] = 0
        att.out.weight[:, [h * v + 5 for h in range(a)]] = 0  # value dim 5 of every head
        att.out.weight[:, v : 2 * v] = 0  # head 1
        ffn.down.weight[:, [3, 7, 11]] = 0
    out = model(*inputs())
    before = (out[0] if isinstance(out, tuple) else out.last_hidden_state).detach()
    units = Units.all(s)
    units.heads[1], units.qk[1], units.v[1] = torch.tensor([2, 0]), torch.tensor([3, 0, 1]), torch.arange(5)
    units.neurons[1] = torch.tensor([i for i in range(20) if i not in (3, 7, 11)])
    smaller = select_units(model, units)
    small_spec = (smaller.encoder if cls is not BertsmithModel else smaller).spec
    assert small_spec.layers[1].attention.heads == 2 and small_spec.layers[1].attention.qk_dim == 3
    assert small_spec.layers[1].attention.v_dim == 5 and small_spec.layers[1].ffn.size == 17
    assert small_spec.layers[0] == s.layers[0] and small_spec.hidden == s.hidden
    out = smaller(*inputs())
    torch.testing.assert_close((out[0] if isinstance(out, tuple) else out.last_hidden_state), before)
    shuffled = Units.all(s)
    shuffled.hidden = torch.randperm(s.hidden, generator=torch.Generator().manual_seed(0))
    shuffled.qk[2] = torch.tensor([3, 1, 0, 2])
    out = select_units(model, shuffled)(*inputs())
    # logits are unchanged; the bare encoder's output channels come out in the new order
    expected = before if cls is not BertsmithModel else before[..., shuffled.hidden]
    torch.testing.assert_close(
        (out[0] if isinstance(out, tuple) else out.last_hidden_state), expected, rtol=1e-4, atol=1e-5
    )


def test_a_narrower_student_of_factorized_embeddings_keeps_the_tables_and_cuts_the_projection():
    s, t = spec(emb=EMBEDDINGS["factorized"]), spec(hidden=24, heads=3, emb=EMBEDDINGS["factorized"])
    source = source_model(s)
    target = sliced(source, s, t)
    emb_s, emb_t = source.embeddings, target.embeddings
    assert torch.equal(emb_t.word.weight, emb_s.word.weight) and torch.equal(emb_t.norm.weight, emb_s.norm.weight)
    assert torch.equal(emb_t.project.weight, emb_s.project.weight[:24]) and emb_t.project.bias.shape == (24,)


def test_a_shared_relative_position_bias_is_sliced_by_leading_heads_and_keeps_heads_in_place_when_reordered():
    from bertsmith.modeling.elastic import importance, reorder

    s, t = spec().replace(relative_attention_buckets=32), spec(heads=2, ffn=40).replace(relative_attention_buckets=32)
    source = source_model(s)
    target = sliced(source, s, t)
    assert torch.equal(target.relative.bias.weight, source.relative.bias.weight[:, :2])
    with torch.no_grad():  # exact: the slice is the source with heads 2, 3 and neurons 40+ removed
        for layer in source.layers:
            layer.attention.out.weight[:, 2 * 8 :] = 0
            layer.ffn.down.weight[:, 40:] = 0
        torch.testing.assert_close(target(*inputs()).last_hidden_state, source(*inputs()).last_hidden_state)
    model = source_model(s, BertsmithForSequenceClassification)
    before, qkv = model(*inputs())[0].detach(), model.encoder.layers[0].attention.qkv.weight.detach().clone()
    reorder(model, importance(model, labelled_batches()))
    torch.testing.assert_close(model(*inputs())[0], before)
    a = 4 * 8  # the query rows (heads × qk_dim) keep their head order; hidden columns move
    assert torch.equal(model.encoder.layers[0].attention.qkv.weight[:a].sort(dim=1).values, qkv[:a].sort(dim=1).values)


# ---- question answering ---------------------------------------------------------------------------
def qa_batches(n=3):
    """Batches whose labels are each example's answer start and end token."""
    return [
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": labels}
        for seed, (ids, mask) in enumerate(inputs(seed) for seed in range(n))
        for labels in [torch.tensor([[seed, seed + 2], [3, 5]])]
    ]


def qa_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean of the start and end cross-entropies over the tokens (BertForQuestionAnswering's loss)."""
    return (F.cross_entropy(logits[..., 0], labels[:, 0]) + F.cross_entropy(logits[..., 1], labels[:, 1])) / 2


@pytest.mark.parametrize("pooler", [True, False])
def test_a_qa_model_is_sliced_reordered_and_selected_like_a_classifier(pooler):
    from bertsmith.modeling.elastic import Units, importance, reorder, select_units

    s = spec(pooler=pooler)
    torch.manual_seed(0)
    model = BertsmithForQuestionAnswering(s).eval()
    with torch.no_grad():
        model.head.out.bias.normal_()  # off its zero init: a lost bias would show
        model.encoder.layers[1].attention.out.weight[:, 0:8] = 0  # a dead head: its Taylor score is 0
    before = model(*inputs())[0].detach()
    assert before.shape == (2, 9, 2)
    same = BertsmithForQuestionAnswering(s).eval()
    slice_weights(model, s, same, s)
    torch.testing.assert_close(same(*inputs())[0], before, rtol=0, atol=0)

    scores = importance(model, qa_batches(), qa_loss)
    assert scores.heads[1][0] == 0 and (scores.heads[1][1:] > 0).all() and (scores.hidden > 0).all()
    reorder(model, scores)
    torch.testing.assert_close(model(*inputs())[0], before, rtol=0, atol=1e-5)
    assert (model.encoder.layers[1].attention.out.weight[:, -8:] == 0).all()  # the dead head went last

    smaller_spec = spec(pooler=pooler, heads=3, ffn=48)
    smaller = BertsmithForQuestionAnswering(smaller_spec).eval()
    slice_weights(model, s, smaller, smaller_spec)
    assert smaller(*inputs())[0].shape == (2, 9, 2)
    torch.testing.assert_close(smaller.head.out.weight, model.head.out.weight)
    units = Units.all(s)
    units.heads[1] = torch.arange(3)  # the dead head, now last, dropped: the same function
    selected = select_units(model, units)
    assert type(selected) is BertsmithForQuestionAnswering and selected.encoder.spec.layers[1].attention.heads == 3
    torch.testing.assert_close(selected(*inputs())[0], before, rtol=0, atol=1e-5)
