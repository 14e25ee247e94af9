"""The FFN supernet of the progressive search: a layout's slice computes what the supernet computes
for it, and a dense FFN cuts into a searched FFN's blocks."""

from __future__ import annotations

import torch

from bertsmith.arch import ArchSpec
from bertsmith.modeling import BertsmithForSequenceClassification
from bertsmith.modeling.elastic import slice_weights
from bertsmith.search.ffn_supernet import FFNSupernet, LayerFFN, layout_of, layout_spec
from tests.tasks import tiny_spec

BACKBONE = ArchSpec.uniform(layers=2, hidden=24, heads=3, ffn=24, embeddings=tiny_spec().embeddings)
LAYOUT = (LayerFFN("tanh(L(gelu(L(x))))", 3, 2), LayerFFN("L(relu(mul(L(x), x)))", 1, 4))


def test_a_slice_of_the_supernet_computes_what_the_supernet_computes_for_that_layout():
    torch.manual_seed(0)
    net = FFNSupernet(BACKBONE, num_labels=2)
    for p in net.model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    net.model.eval()
    ids = torch.randint(5, 100, (2, 7))
    net.activate(LAYOUT)
    with torch.no_grad():
        inside, _ = net.model(ids)
    net.activate(None)
    alone = net.extract(LAYOUT).eval()
    assert alone.encoder.spec == layout_spec(BACKBONE, LAYOUT) and layout_of(alone.encoder.spec) == LAYOUT
    with torch.no_grad():
        out, _ = alone(ids)
    torch.testing.assert_close(out, inside)
    with torch.no_grad():
        full, _ = net.model(ids)
    assert not torch.allclose(full, inside)  # the full stack is another network


def test_a_dense_ffn_cuts_into_the_first_block_and_later_blocks_add_nothing_at_first():
    torch.manual_seed(0)
    dense_spec = ArchSpec.uniform(layers=2, hidden=24, heads=3, ffn=40, embeddings=tiny_spec().embeddings)
    dense = BertsmithForSequenceClassification(dense_spec, 2).eval()
    one = layout_spec(BACKBONE, [LayerFFN("L(gelu(L(x)))", 1, 1)] * 2)
    model = BertsmithForSequenceClassification(one, 2).eval()
    slice_weights(dense, dense_spec, model, one)
    reference = BertsmithForSequenceClassification(
        dense_spec.replace(
            layers=[
                {"attention": la.attention.model_dump(), "ffn": {"kind": "dense", "size": 24}}
                for la in dense_spec.layers
            ]
        ),
        2,
    ).eval()
    slice_weights(dense, dense_spec, reference, reference.encoder.spec)
    ids = torch.randint(5, 100, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reference(ids)[0])  # block 0 is the dense FFN's slice
    two = layout_spec(BACKBONE, [LayerFFN("L(gelu(L(x)))", 2, 1)] * 2)
    stacked = BertsmithForSequenceClassification(two, 2)
    slice_weights(dense, dense_spec, stacked, two)
    assert torch.count_nonzero(stacked.encoder.layers[0].ffn.blocks[1].lin2.weight) == 0
