"""ONNX Runtime deployment files: an optimized graph and its int8 twin (``model.int8.onnx``).

``quantize_onnx`` turns the exported ``model.onnx`` into a file for CPU inference under onnxruntime:

1. onnxscript's ORT fusions (``optimize_for_ort``), written for graphs of torch's dynamo exporter:
   scaled-dot-product attention into ``MultiHeadAttention``, bias + GELU into ``BiasGelu``.
2. ``SkipLayerNormalization`` nodes split back into ``Add`` + ``LayerNormalization``: on the CPUs
   bertsmith was measured on, onnxruntime's SkipLayerNormalization kernel took 6x the time of the two
   plain ops (243 µs against 40 µs for 128 × 336 floats, onnxruntime 1.32). ``session`` therefore also
   turns off onnxruntime's own ``SkipLayerNormFusion``; a user's default session re-fuses them and is
   slower, not wrong (the model card says so). bertsmith's own measured choice, not onnxruntime's.
3. onnxruntime's dynamic quantization (``quantize_dynamic``): weights of every MatMul stored as int8
   (per output channel with ``per_channel``), activations quantized per call. Embeddings, attention
   products, LayerNorm and softmax stay fp32.

The result is an ORT-only file (it uses ``com.microsoft`` operators); ``model.onnx`` stays the portable one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx_ir as ir
import torch

from ..errors import ConfigError
from .mapping import QA_OUTPUT_NAMES

SCHEMES = ("int8",)
DISABLED_ORT_FUSIONS = ["SkipLayerNormFusion"]  # see the module docstring


def check_scheme(scheme: str | None, where: str = "--quantize") -> str | None:
    """``scheme`` if bertsmith can quantize with it (None: no quantization), else a ConfigError."""
    if scheme is None or scheme in SCHEMES:
        return scheme
    raise ConfigError(f"{where}: unknown quantization scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")


def optimize_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, int]:
    """Write ``src`` with onnxruntime's transformer fusions applied (and SkipLayerNorm split) to
    ``dst``; returns the count of each fusion applied."""
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model = ir.load(str(src))
    model, counts = optimize_for_ort(model)
    counts["skip_layer_normalization_split"] = _split_skip_layer_norms(model)
    ir.save(model, str(dst))
    return {name: n for name, n in counts.items() if n}


def _split_skip_layer_norms(model: ir.Model) -> int:
    """Replace each com.microsoft SkipLayerNormalization whose mean/inv-std outputs are unused by
    Add (+ bias Add) + LayerNormalization; returns how many were replaced."""
    graph, replaced = model.graph, 0
    for node in list(graph):
        if node.op_type != "SkipLayerNormalization" or node.domain != "com.microsoft":
            continue
        x, skip, gamma, beta, bias = (list(node.inputs) + [None] * 5)[:5]
        outputs = list(node.outputs) + [None] * (4 - len(node.outputs))
        if any(o is not None and o.uses() for o in outputs[1:3]):
            continue
        eps = node.attributes["epsilon"].as_float() if "epsilon" in node.attributes else 1e-12
        new = [ir.Node("", "Add", [x, skip])]
        if bias is not None:
            new.append(ir.Node("", "Add", [new[-1].outputs[0], bias]))
        summed = new[-1].outputs[0]
        norm_inputs = [summed, gamma] + ([beta] if beta is not None else [])
        new.append(
            ir.Node(
                "",
                "LayerNormalization",
                norm_inputs,
                attributes=[ir.AttrInt64("axis", -1), ir.AttrFloat32("epsilon", eps)],
            )
        )
        graph.insert_before(node, new)
        for old_value, value in ((outputs[0], new[-1].outputs[0]), (outputs[3], summed)):
            if old_value is None:
                continue
            if old_value.is_graph_output():  # e.g. a base model's last_hidden_state: keep its name
                name, old_value.name = old_value.name, None
                value.name = name
            ir.convenience.replace_all_uses_with(old_value, value, replace_graph_outputs=True)
        graph.remove(node, safe=True)
        replaced += 1
    return replaced


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike, *, per_channel: bool = False) -> dict[str, int]:
    """Write the int8 deployment file of the fp32 ONNX model ``src`` to ``dst`` (optimized, then
    dynamically quantized); returns the fusions applied. ``dst`` appears only when complete."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as tmp:
        optimized, quantized = Path(tmp) / "optimized.onnx", Path(tmp) / dst.name
        counts = optimize_onnx(src, optimized)
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # its advice to pre-process applies to CNNs, not here
        try:
            quantize_dynamic(optimized, quantized, weight_type=QuantType.QInt8, per_channel=per_channel)
        finally:
            root.setLevel(level)
        os.replace(quantized, dst)
    return counts


def session(path: str | os.PathLike, *, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` with bertsmith's settings (see the module docstring)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the optimizer's notes about removed initializers are noise
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_ORT_FUSIONS
    )


def feed(ort_session, batch: dict) -> dict[str, np.ndarray]:
    """The inputs ``ort_session`` declares, as int64 arrays from ``batch`` (tensors or arrays); token types
    default to 0 and the attention mask to all ones."""
    ids = np.asarray(batch["input_ids"], dtype=np.int64)
    defaults = {"attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    out = {}
    for value in ort_session.get_inputs():
        given = batch.get(value.name)
        out[value.name] = np.asarray(given, dtype=np.int64) if given is not None else defaults[value.name]
    return out


class OnnxClassifier(torch.nn.Module):
    """A task model's ONNX file behind the call of bertsmith's models (``model(ids, mask, token_types)
    → (logits, None)``), so the run's own evaluation code scores it like the PyTorch model: a sequence
    classifier's ``logits`` [B, num_labels], or a question-answering model's ``start_logits`` and
    ``end_logits`` stacked as ``BertsmithForQuestionAnswering``'s logits [B, T, 2]. ``head`` says which
    ("classification" or "qa")."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.session = session(path, threads=threads)
        names = [o.name for o in self.session.get_outputs()]
        heads = {("logits",): "classification", QA_OUTPUT_NAMES: "qa"}
        if tuple(names) not in heads:
            raise ConfigError(
                f"{path}: not a classification or question-answering export (its outputs are {names}, not "
                f"['logits'] or {list(QA_OUTPUT_NAMES)})"
            )
        self.head = heads[tuple(names)]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        batch = {
            "input_ids": input_ids.cpu().numpy(),
            "attention_mask": None if attention_mask is None else attention_mask.cpu().numpy(),
            "token_type_ids": None if token_type_ids is None else token_type_ids.cpu().numpy(),
        }
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feed(self.session, batch))]
        return (outputs[0] if self.head == "classification" else torch.stack(outputs, dim=-1)), None
