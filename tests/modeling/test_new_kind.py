"""A kind is one module plus a registry entry: the toy ``glu`` FFN (tests/modeling/toy_glu.py), registered
with ``bertsmith.kinds.register`` and nothing else changed, validates, is summarised, builds, is counted
exactly, is sliced, exports to ONNX and is searched by NSGA-II from a YAML space that names it."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from bertsmith import cost
from bertsmith.arch import ArchSpec
from bertsmith.errors import SpecError
from bertsmith.hf import export_onnx, onnx_max_abs_diff
from bertsmith.hf.mapping import field_of
from bertsmith.kinds import KINDS, register
from bertsmith.modeling import BertsmithModel
from bertsmith.modeling import registry as modules
from bertsmith.modeling.elastic import slice_weights
from bertsmith.search.costs import CostModel
from bertsmith.search.loop import run_search
from bertsmith.search.space import SearchSpace

from ..search.test_loop import FakeEvaluator
from .toy_glu import GLUFFN, GLUSpec

EMB = {"vocab_size": 97, "max_positions": 40}


@pytest.fixture
def glu():
    """The toy kind registered for one test."""
    register(GLUSpec)
    yield GLUSpec
    del KINDS["ffn"]["glu"], modules.FFN["glu"]


def glu_spec(bias: bool = True, **fields) -> ArchSpec:
    layers = [
        {"attention": {"heads": 2, "qk_dim": 8, "v_dim": 12}, "ffn": {"kind": "glu", "size": 40, "bias": bias}},
        {
            "attention": {"kind": "mixed", "heads": 2, "qk_dim": 8, "v_dim": 8, "conv_kernel": 3, "head_ratio": 2},
            "ffn": {"kind": "glu", "size": 24, "activation": "swish"},
        },
    ]
    return ArchSpec.build(hidden=32, layers=layers, embeddings=EMB, **fields)


def test_an_unregistered_kind_is_unknown():
    with pytest.raises(
        SpecError, match=r"layers\[0\].ffn.kind: unknown kind 'glu' \(known: dense, grouped, searched\)"
    ):
        glu_spec()


def test_the_kind_validates_round_trips_and_is_summarised(glu):
    spec = glu_spec(bias=False)
    assert isinstance(spec.layers[0].ffn, GLUSpec)
    assert spec.to_dict()["layers"][0]["ffn"] == {"kind": "glu", "size": 40, "activation": "gelu", "bias": False}
    assert ArchSpec.from_yaml(spec.to_yaml()) == spec == ArchSpec.from_json(spec.to_json())
    assert spec.summary() == (
        "L2 h32 e32 | per-layer: mhsa a2 k8 v12 | glu f40 nobias; mixed a2 k8 v8 conv2x3 | glu f24"
    )
    assert field_of(spec, "layers.0.ffn.up.weight") == "layers[0].ffn (kind=glu, size=40, bias=False)"
    for layer, message in (
        ({"groups": 2}, r"layers\[0\].ffn.groups: unknown key"),
        ({"activation": "swiglu"}, r"layers\[0\].ffn.activation: unknown activation 'swiglu'"),
        ({"bias": 3}, r"layers\[0\].ffn.bias = 3"),
    ):
        with pytest.raises(SpecError, match=message):
            ArchSpec.build(
                hidden=32,
                layers=[
                    {"attention": {"heads": 2, "qk_dim": 8, "v_dim": 8}, "ffn": {"kind": "glu", "size": 8} | layer}
                ],
                embeddings=EMB,
            )


@pytest.mark.parametrize("bias", [True, False])
def test_the_kind_builds_and_is_counted_exactly(glu, bias):
    spec = glu_spec(bias=bias)
    model = BertsmithModel(spec)
    assert isinstance(model.layers[0].ffn, GLUFFN)
    h, seq = spec.hidden, 16
    for i, layer in enumerate(spec.layers):
        f = layer.ffn.size
        by_hand = 3 * h * f + (2 * f + h if layer.ffn.bias else 0) + 2 * h  # three weights, their biases, LayerNorm
        assert sum(p.numel() for p in model.layers[i].ffn.parameters()) == by_hand
        rows = {row.component: row for row in cost.breakdown(spec, seq)}
        assert rows[f"layer {i} ffn"].params == by_hand
        assert rows[f"layer {i} ffn"].flops == 2 * seq * 3 * h * f
        with FlopCounterMode(display=False) as counter:  # torch's count of the matrix products
            model.layers[i].ffn(torch.randn(1, seq, h))
        assert counter.get_total_flops() == rows[f"layer {i} ffn"].flops
    assert cost.params(spec) == sum(p.numel() for p in model.parameters())


def test_the_kind_is_sliced_by_its_slicer(glu):
    def spec(kind: str, size: int) -> ArchSpec:
        layer = {"attention": {"heads": 2, "qk_dim": 8, "v_dim": 8}, "ffn": {"kind": kind, "size": size}}
        return ArchSpec.build(hidden=32, layers=[layer] * 2, embeddings=EMB)

    big, small = spec("glu", 40), spec("glu", 16)
    torch.manual_seed(0)
    source, target = BertsmithModel(big).eval(), BertsmithModel(small).eval()
    with torch.no_grad():
        for layer in source.layers:  # neurons 16 and beyond add nothing: cutting them keeps the function
            layer.ffn.down.weight[:, 16:] = 0
    slice_weights(source, big, target, small)
    ids = torch.randint(0, EMB["vocab_size"], (2, 7))
    torch.testing.assert_close(target(ids).last_hidden_state, source(ids).last_hidden_state)
    with pytest.raises(SpecError, match=r"layers\[0\].ffn.kind: slicing supports .*glu from glu \(target 'dense'"):
        slice_weights(source, big, BertsmithModel(spec("dense", 16)), spec("dense", 16))


def test_the_kind_exports_to_onnx_matching_pytorch(glu, tmp_path):
    spec = glu_spec()
    torch.manual_seed(0)
    model = BertsmithModel(spec).eval()
    path = tmp_path / "model.onnx"
    export_onnx(model, path, seq_len=16)
    for b, t in ((3, 9), (1, spec.embeddings.max_positions), (2, 1)):  # shapes other than the traced one
        g = torch.Generator().manual_seed(b + t)
        ids = torch.randint(0, spec.embeddings.vocab_size, (b, t), generator=g)
        mask = torch.ones(b, t, dtype=torch.long)
        mask[0, t // 2 + 1 :] = 0
        types = (torch.arange(t) >= t // 2).long().expand(b, t)
        assert (
            onnx_max_abs_diff(model, path, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}) <= 1e-4
        )


def test_nsga2_searches_a_yaml_space_that_names_the_kind(glu, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "depth": [1, 2],
                "hidden": [16, 32],
                "per_layer": True,
                "embeddings": EMB,
                "layer": {
                    "heads": [1, 2],
                    "qk_dim": [8],
                    "v_dim": [8],
                    "ffn": [16, 48],
                    "ffn_kind": ["dense", "glu"],
                    "activation": ["gelu", "relu"],
                },
            }
        )
    )
    space = SearchSpace.load(path)
    assert "layer0.ffn_kind" in space.genes() and space.genes()["layer0.ffn_kind"] == ["dense", "glu"]
    result = run_search(
        space,
        FakeEvaluator(),
        CostModel(space.budget),
        run_dir=tmp_path / "run",
        trials=12,
        strategy="nsga2",
        strategy_options={"population_size": 6},
    )
    assert result.evaluated == 12 and result.front
    proposed = [space.from_genes(t.params) for t in result.study.trials]
    assert {layer.ffn.kind for spec in proposed for layer in spec.layers} == {"dense", "glu"}
    assert all(p.arch() in proposed for p in result.front)
    assert any(layer.ffn.kind == "glu" for p in result.front for layer in p.arch().layers)
