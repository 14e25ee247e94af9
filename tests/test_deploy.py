"""The int8 deployment file (``hf.deploy``) and the deployment verdict (``deployment``)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from bertsmith.deployment import INT8_FILE, recommend
from bertsmith.errors import ConfigError
from bertsmith.hf import export_onnx, onnx_max_abs_diff
from bertsmith.hf.deploy import OnnxClassifier, check_scheme, feed, optimize_onnx, quantize_onnx, session
from bertsmith.hf.export_dir import write_export_dir

from .conftest import tiny_spec
from .test_export import _bert_spec, _every_kind_spec, batch, build


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small BERT-shaped classifier (with a pooler and token types) and its model.onnx."""
    spec = _bert_spec()
    model = build(spec, "classification")
    path = tmp_path_factory.mktemp("deploy") / "model.onnx"
    export_onnx(model, path, seq_len=16)
    return spec, model, path


def _ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_the_optimized_graph_fuses_attention_splits_skip_layer_norm_and_computes_the_same(exported, tmp_path):
    spec, model, path = exported
    counts = optimize_onnx(path, tmp_path / "optimized.onnx")
    ops = _ops(tmp_path / "optimized.onnx")
    assert "MultiHeadAttention" in ops and "SkipLayerNormalization" not in ops
    assert counts["skip_layer_normalization_split"] == counts["skip_layer_normalization"] >= 2 * spec.num_layers
    for b, t in ((3, 10), (1, 40), (2, 1)):
        ids, mask = batch(spec, b=b, t=t, seed=b + t)
        types = (torch.arange(t) >= t // 2).long().expand(b, t)
        diff = onnx_max_abs_diff(
            model, tmp_path / "optimized.onnx", {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        assert diff <= 1e-4, (b, t, diff)


@pytest.mark.parametrize("per_channel", [True, False])
def test_the_int8_file_quantizes_every_matmul_weight_and_stays_close(exported, tmp_path, per_channel):
    spec, model, path = exported
    out = tmp_path / INT8_FILE
    quantize_onnx(path, out, per_channel=per_channel)
    graph = onnx.load(str(out)).graph
    assert "MatMulInteger" in {n.op_type for n in graph.node} or "DynamicQuantizeMatMul" in {
        n.op_type for n in graph.node
    }
    int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    weights = [t for t in onnx.load(str(path)).graph.initializer if len(t.dims) == 2 and "embeddings" not in t.name]
    assert len(int8) >= len(weights) - 1  # every projection (the classifier's too); position/type tables stay fp32
    assert sorted(p.name for p in tmp_path.iterdir()) == [INT8_FILE]  # no scratch files left
    ids, mask = batch(spec, b=4, t=12)
    diff = onnx_max_abs_diff(model, out, {"input_ids": ids, "attention_mask": mask})
    assert 0 < diff < 0.1  # quantized: not exact, but close


def test_an_onnx_classifier_scores_like_the_pytorch_model(exported):
    spec, model, path = exported
    ids, mask = batch(spec, b=3, t=9)
    types = torch.zeros_like(ids)
    with torch.no_grad():
        expected = model(ids, mask, types)[0]
    got, _ = OnnxClassifier(path)(ids, mask, types)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    inputs = feed(session(path), {"input_ids": ids.numpy()})  # defaults: a full mask, one segment
    assert inputs["attention_mask"].tolist() == np.ones((3, 9), dtype=np.int64).tolist()
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"} and not inputs["token_type_ids"].any()


def test_an_unknown_scheme_is_refused():
    assert check_scheme("int8") == "int8" and check_scheme(None) is None
    with pytest.raises(ConfigError, match="--quantize: unknown quantization scheme 'int4'; choose one of int8"):
        check_scheme("int4")


def test_int8_is_recommended_only_within_the_allowed_drop():
    fp32 = {"dev": {"accuracy": 0.800}, "test": {"accuracy": 0.810}}
    close = recommend(fp32, {"dev": {"accuracy": 0.797}, "test": {"accuracy": 0.812}}, "accuracy", 0.5)
    assert close["recommended"] == "model.int8.onnx"
    assert close["change_points"] == pytest.approx({"dev": -0.3, "test": 0.2})
    far = recommend(fp32, {"dev": {"accuracy": 0.801}, "test": {"accuracy": 0.800}}, "accuracy", 0.5)
    assert far["recommended"] == "model.onnx"
    assert "loses 1.00 points of test accuracy" in far["reason"] and "export.int8_max_drop (0.5)" in far["reason"]


@pytest.mark.parametrize("head,kinds", [("classification", "every"), ("base", "every"), ("classification", "relative")])
def test_every_kind_survives_optimization_and_int8(tmp_path, head, kinds):
    """Mixed attention, grouped and searched FFNs, trigram and roberta positions, with a classifier
    or as a bare encoder (whose last_hidden_state is a graph output that a fused node produced); and
    MPNet's shared relative position bias over layers of 2 and 3 heads."""
    spec = _every_kind_spec() if kinds == "every" else tiny_spec("mhsa", "dense", True, relative_attention_buckets=32)
    model = build(spec, head)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, seq_len=16)
    optimize_onnx(path, tmp_path / "optimized.onnx")
    quantize_onnx(path, tmp_path / INT8_FILE)
    names = [o.name for o in onnx.load(str(path)).graph.output]
    for out in ("optimized.onnx", INT8_FILE):
        assert [o.name for o in onnx.load(str(tmp_path / out)).graph.output] == names
    ids, mask = batch(spec, b=3, t=11)
    inputs = {"input_ids": ids, "attention_mask": mask}
    assert onnx_max_abs_diff(model, tmp_path / "optimized.onnx", inputs) <= 1e-4
    assert 0 < onnx_max_abs_diff(model, tmp_path / INT8_FILE, inputs) < 0.2


@pytest.mark.parametrize(
    "spec", [_bert_spec(), tiny_spec("mixed", "searched", True, pooler=False)], ids=["bert", "per_layer"]
)
def test_a_qa_export_dir_has_start_and_end_logits_in_onnx_and_int8(spec, tmp_path):
    """A QA model's export directory: stock or remote Hugging Face files, model.onnx whose outputs
    start_logits and end_logits ([batch, sequence], dynamic) match PyTorch, and the int8 twin; the
    ONNX wrapper answers like the PyTorch model (logits [B, T, 2])."""
    model = build(spec, "qa")
    written = write_export_dir(model, tmp_path / "out", quantize=True, seq_len=16)
    assert written.kind == ("bert" if spec.is_uniform else "remote")
    assert written.onnx_max_abs_diff <= 1e-4 and written.int8_fusions is not None
    for path in (written.onnx, written.int8_onnx):
        outputs = onnx.load(str(path)).graph.output
        assert [o.name for o in outputs] == ["start_logits", "end_logits"]
        assert all(len(o.type.tensor_type.shape.dim) == 2 for o in outputs)
        assert all(d.dim_param for o in outputs for d in o.type.tensor_type.shape.dim)
    for b, t in ((3, 11), (1, spec.embeddings.max_positions), (2, 1)):
        ids, mask = batch(spec, b=b, t=t, seed=b + t)
        types = (torch.arange(t) >= t // 2).long().expand(b, t)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        assert onnx_max_abs_diff(model, written.onnx, inputs) <= 1e-4, (b, t)
        assert 0 < onnx_max_abs_diff(model, written.int8_onnx, inputs) < 0.2, (b, t)
    ids, mask = batch(spec, b=3, t=9)
    with torch.no_grad():
        expected = model(ids, mask)[0]
    wrapper = OnnxClassifier(written.onnx)
    got, nothing = wrapper(ids, mask)
    assert wrapper.head == "qa" and nothing is None and got.shape == expected.shape == (3, 9, 2)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert OnnxClassifier(written.int8_onnx)(ids, mask)[0].shape == (3, 9, 2)


def test_the_onnx_wrapper_refuses_a_base_model(tmp_path):
    spec = _bert_spec()
    export_onnx(build(spec, "base"), tmp_path / "model.onnx", seq_len=8)
    with pytest.raises(ConfigError, match=r"not a classification or question-answering export .*last_hidden_state"):
        OnnxClassifier(tmp_path / "model.onnx")
