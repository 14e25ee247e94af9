"""Export bertsmith models: Hugging Face directories (``export_pretrained``) and ONNX (``export_onnx``).

A spec that stock transformers classes express exactly (``mapping.stock_kind``) is written as a plain
BERT or ConvBERT directory. Anything else (per-layer shapes, head dims other than hidden/heads,
searched FFNs, trigram or factorized embeddings with self-attention, RoBERTa positions, ...) is
written as a "remote" directory: ``config.json`` with ``auto_map``, ``configuration_bertsmith.py``,
``modeling_bertsmith.py`` and copies of the pure-torch files of ``bertsmith.modeling`` that
``encoder.py`` imports, loadable by ``AutoModel*.from_pretrained(dir, trust_remote_code=True)``
without bertsmith installed. transformers' dynamic-module loader copies the sibling files that a
module imports with ``from .name import ...`` (one level, same folder), which is exactly how the
modeling files import each other. Weights are only ever written as safetensors; the tied MLM decoder
weight is left out and re-tied on load. Each directory is written into a temporary sibling and
renamed into place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from .. import __version__
from ..arch import ArchSpec
from ..errors import CheckpointError, ConfigError
from ..files import atomic_dir, publish, writing
from ..modeling import (
    BertsmithForMaskedLM,
    BertsmithForQuestionAnswering,
    BertsmithForSequenceClassification,
    BertsmithModel,
)
from . import mapping
from .checkpoint import ImportedModel
from .mapping import QA_OUTPUT_NAMES

MODELING_DIR = Path(__file__).resolve().parent.parent / "modeling"
REMOTE_DIR = Path(__file__).resolve().parent / "remote"
REMOTE_CLASSES = {
    "base": "BertsmithModel",
    "classification": "BertsmithForSequenceClassification",
    "mlm": "BertsmithForMaskedLM",
    "qa": "BertsmithForQuestionAnswering",
}
AUTO_MAP = {
    "AutoConfig": "configuration_bertsmith.BertsmithConfig",
    "AutoModel": "modeling_bertsmith.BertsmithModel",
    "AutoModelForSequenceClassification": "modeling_bertsmith.BertsmithForSequenceClassification",
    "AutoModelForMaskedLM": "modeling_bertsmith.BertsmithForMaskedLM",
    "AutoModelForQuestionAnswering": "modeling_bertsmith.BertsmithForQuestionAnswering",
}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def describe(model) -> tuple[torch.nn.Module, str, ArchSpec, int | None]:
    """(module, head, spec, num_labels) of a bertsmith model or ImportedModel; head is "base",
    "classification", "mlm" or "qa" (num_labels 2: start and end logits)."""
    if isinstance(model, ImportedModel):
        model = model.model
    if isinstance(model, BertsmithForSequenceClassification):
        head, spec, num_labels = "classification", model.encoder.spec, model.num_labels
    elif isinstance(model, BertsmithForQuestionAnswering):
        head, spec, num_labels = "qa", model.encoder.spec, model.num_labels
    elif isinstance(model, BertsmithForMaskedLM):
        head, spec, num_labels = "mlm", model.encoder.spec, None
    elif isinstance(model, BertsmithModel):
        head, spec, num_labels = "base", model.spec, None
    else:
        raise ConfigError(
            "expected a bertsmith model (BertsmithModel, BertsmithForSequenceClassification, BertsmithForMaskedLM, "
            f"BertsmithForQuestionAnswering or an ImportedModel), got {type(model).__name__}"
        )
    if not isinstance(spec, ArchSpec):
        raise ConfigError(f"the model's spec is a {type(spec).__name__}, not an ArchSpec")
    return model, head, spec, num_labels


# ---- Hugging Face directories -----------------------------------------------------------------
def export_pretrained(
    model,
    out_dir: str | os.PathLike,
    *,
    tokenizer_dir: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Write ``model`` as a Hugging Face directory; return the kind written: "bert", "convbert",
    "electra", "distilbert" or "mpnet" (stock transformers classes load it) or "remote"
    (``trust_remote_code=True``). Tokenizer files
    found in ``tokenizer_dir`` are copied along. A classifier's class names (``labels``, else those
    an imported checkpoint carried) go into config.json's ``id2label``/``label2id``, so pipelines
    answer with them. ``dtype`` (e.g. ``torch.float16``) stores the floating-point weights in that
    precision (config.json's ``dtype`` says so). A question-answering model is written without its
    pooler, which it never uses (transformers' QA models have none). Replaces an earlier export at
    ``out_dir``."""
    if labels is None and isinstance(model, ImportedModel):
        labels = model.labels
    module, head, spec, num_labels = describe(model)
    names = _label_maps(labels, num_labels) if head == "classification" else {}
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    if head == "qa" and spec.pooler:
        spec = spec.replace(pooler=False)
        state = {k: v for k, v in state.items() if not k.startswith("encoder.pooler.")}
    if dtype is not None:
        state = _cast(state, dtype)
    kind, _why = mapping.stock_kind(spec, head)
    if head == "mlm" and not _is_tied(state):
        kind = "remote"  # stock MLM classes re-tie the decoder to the embeddings on load
    tokenizer = _tokenizer_files(Path(tokenizer_dir)) if tokenizer_dir is not None else []
    with atomic_dir(Path(out_dir), marker="config.json") as tmp:
        if kind == "remote":
            _write_remote(tmp, spec, head, num_labels, state, names)
        else:
            _write_stock(tmp, kind, spec, head, num_labels, state, names)
        for file in tokenizer:
            shutil.copyfile(file, tmp / file.name)
    return kind


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``state`` with its floating-point tensors in ``dtype``; tied tensors stay one tensor."""
    done: dict[tuple, torch.Tensor] = {}
    out = {}
    for name, tensor in state.items():
        if tensor.is_floating_point():
            key = (tensor.data_ptr(), tuple(tensor.shape))
            out[name] = done.setdefault(key, tensor.to(dtype))
        else:
            out[name] = tensor
    return out


def _label_maps(labels: Sequence[str] | None, num_labels: int | None) -> dict:
    """config.json's ``id2label`` and ``label2id`` for ``labels`` (none for a regression head or
    unnamed classes)."""
    if labels is None or not num_labels or num_labels < 2:
        return {}
    if len(labels) != num_labels:
        raise ConfigError(
            f"{len(labels)} label names ({', '.join(map(str, labels))}) for a head of {num_labels} classes"
        )
    return {
        "id2label": {i: str(name) for i, name in enumerate(labels)},
        "label2id": {str(name): i for i, name in enumerate(labels)},
    }


def _tokenizer_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such tokenizer directory")
    files = [directory / name for name in TOKENIZER_FILES if (directory / name).is_file()]
    if not files:
        raise CheckpointError(f"{directory}: no tokenizer files (looked for {', '.join(TOKENIZER_FILES)})")
    return files


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    # Fresh contiguous copies: no two tensors may share storage in a safetensors file.
    save_file({k: v.contiguous().clone() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})
    publish(path)  # save_file writes it private


def _write_stock(tmp: Path, kind: str, spec: ArchSpec, head: str, num_labels, state, names: dict) -> None:
    import transformers

    config_class = {
        "bert": transformers.BertConfig,
        "convbert": transformers.ConvBertConfig,
        "electra": transformers.ElectraConfig,
        "distilbert": transformers.DistilBertConfig,
        "mpnet": transformers.MPNetConfig,
    }[kind]
    kwargs = mapping.hf_config_kwargs(spec, kind) | names
    if head == "classification" and not names:
        kwargs["num_labels"] = num_labels
    config = config_class(dtype=_dtype_name(state), **kwargs)
    config.architectures = [mapping.STOCK_ARCHITECTURES[kind][head]]
    config.to_json_file(str(tmp / "config.json"), use_diff=False)

    their_prefix = "" if head == "base" else mapping.BASE_PREFIX[kind]
    tensors, used = {}, set()
    for entry in mapping.model_entries(spec, kind, head, their_prefix):
        for name, part in zip(entry.theirs, entry.split(state[entry.ours])):
            tensors[name] = part
        used.add(entry.ours)
    left = set(state) - used - {mapping.TIED_DECODER["bertsmith"]}
    if left:  # the mapping and the modules disagree: a bug, not a user error
        raise RuntimeError(f"bertsmith.hf stock export has no transformers name for {sorted(left)[:5]}")
    _save_safetensors(tensors, tmp / "model.safetensors")


def _write_remote(tmp: Path, spec: ArchSpec, head: str, num_labels, state, names: dict) -> None:
    import importlib

    config_module = importlib.import_module("bertsmith.hf.remote.configuration_bertsmith")
    kwargs = names or ({"num_labels": num_labels} if head == "classification" else {})
    tied = _is_tied(state) if head == "mlm" else True
    config = config_module.BertsmithConfig(
        spec=spec.to_dict(), tie_word_embeddings=tied, dtype=_dtype_name(state), **kwargs
    )
    config.architectures = [REMOTE_CLASSES[head]]
    config.auto_map = dict(AUTO_MAP)
    config.bertsmith_version = __version__
    config.to_json_file(str(tmp / "config.json"), use_diff=True)

    if head == "mlm" and tied:
        state = {k: v for k, v in state.items() if k != mapping.TIED_DECODER["bertsmith"]}
    _save_safetensors(state, tmp / "model.safetensors")
    for name in ("configuration_bertsmith.py", "modeling_bertsmith.py"):
        shutil.copyfile(REMOTE_DIR / name, tmp / name)
    for file in modeling_files():
        shutil.copyfile(file, tmp / file.name)


def _dtype_name(state: dict[str, torch.Tensor]) -> str:
    """The weights' floating-point dtype, as config.json records it (e.g. "float32")."""
    dtypes = [t.dtype for t in state.values() if t.is_floating_point()]
    return str(max(set(dtypes), key=dtypes.count)).removeprefix("torch.") if dtypes else "float32"


def _is_tied(state: dict[str, torch.Tensor]) -> bool:
    decoder, word = state.get("decoder.weight"), state.get("encoder.embeddings.word.weight")
    return decoder is not None and word is not None and decoder.data_ptr() == word.data_ptr()


_RELATIVE = re.compile(r"^\s*(?:from\s+\.(\w+)\s+import|import\s+\.(\w+))", re.MULTILINE)
_ABSOLUTE_BERTSMITH = re.compile(r"^\s*(?:from|import)\s+bertsmith\b", re.MULTILINE)
_PACKAGE_IMPORT = re.compile(r"^\s*from\s+\.+\s+import|^\s*from\s+\.\.", re.MULTILINE)


def modeling_files() -> list[Path]:
    """``encoder.py`` and every file of ``bertsmith.modeling`` it imports, transitively."""
    todo, seen = ["encoder"], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = MODELING_DIR / f"{name}.py"
        text = path.read_text(encoding="utf-8")
        if _ABSOLUTE_BERTSMITH.search(text):
            raise RuntimeError(f"{path} imports bertsmith: the modeling files must stay self-contained")
        if _PACKAGE_IMPORT.search(text):  # transformers' loader only follows `from .name import ...`
            raise RuntimeError(f"{path}: import siblings as `from .name import ...` (exported models need it)")
        seen.append(name)
        todo += [a or b for a, b in _RELATIVE.findall(text)]
    return [MODELING_DIR / f"{name}.py" for name in sorted(seen)]


# ---- ONNX -------------------------------------------------------------------------------------
class _OnnxGraph(torch.nn.Module):
    """(input_ids, attention_mask[, token_type_ids]) → plain tensors: last_hidden_state (+ pooler_output),
    logits, or a QA model's start_logits and end_logits ([batch, sequence] each). ``token_type_ids`` is
    an input when the model has more than one token type (sentence pairs)."""

    def __init__(self, model: torch.nn.Module, head: str, spec: ArchSpec):
        super().__init__()
        self.model, self.head, self.pooler = model, head, spec.pooler
        self.types = spec.embeddings.type_vocab_size > 1

    def input_names(self) -> list[str]:
        return ["input_ids", "attention_mask"] + (["token_type_ids"] if self.types else [])

    def output_names(self) -> list[str]:
        if self.head == "qa":
            return list(QA_OUTPUT_NAMES)
        if self.head != "base":
            return ["logits"]
        return ["last_hidden_state", "pooler_output"] if self.pooler else ["last_hidden_state"]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ):
        if self.head == "qa":
            return self.model(input_ids, attention_mask, token_type_ids)[0].unbind(-1)
        if self.head != "base":
            return self.model(input_ids, attention_mask, token_type_ids)[0]
        out = self.model(input_ids, attention_mask, token_type_ids)
        return (out.last_hidden_state, out.pooler_output) if self.pooler else out.last_hidden_state

    def example(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The graph's inputs from ``batch`` (token types default to 0)."""
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        mask = torch.ones_like(ids) if mask is None else mask
        if not self.types:
            return ids, mask
        types = batch.get("token_type_ids")
        return ids, mask, torch.zeros_like(ids) if types is None else types


def export_onnx(model, path: str | os.PathLike, *, seq_len: int = 128) -> None:
    """Write ``model`` as ONNX with dynamic batch and sequence axes. Inputs ``input_ids``,
    ``attention_mask`` (int64, [batch, seq]; the mask stays a real input and padding is honoured) and,
    for a model with token types (sentence pairs), ``token_type_ids``; outputs ``last_hidden_state``
    (+ ``pooler_output``) for a base model, ``start_logits`` and ``end_logits`` ([batch, seq] each) for
    a question-answering model, ``logits`` with another head.
    ``seq_len`` is the example length traced (capped at the spec's max_positions).

    Uses torch.onnx's torch.export-based exporter (``dynamo=True``, the default since torch 2.9): it
    exports every attention / FFN / embedding kind with dynamic shapes. The legacy TorchScript
    exporter (deprecated) cannot export ``mixed`` attention with a dynamic sequence length
    (``Tensor.unfold``: "input size not accessible"). Weights go into the one file unless the model
    is over 1 GiB (then ``<name>.data`` beside it)."""
    module, head, spec, _ = describe(model)
    path = Path(path)
    graph = _OnnxGraph(module, head, spec)
    seq = max(2, min(seq_len, spec.embeddings.max_positions))
    ids = torch.arange(2 * seq).reshape(2, seq) % spec.embeddings.vocab_size
    mask = torch.ones(2, seq, dtype=torch.long)
    mask[1, seq // 2 :] = 0  # a padded row in the example: the mask path is what gets traced
    types = torch.zeros(2, seq, dtype=torch.long)
    types[0, seq // 2 :] = 1
    example = graph.example({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    batch_dim = torch.export.Dim("batch")
    seq_dim = torch.export.Dim("sequence", max=spec.embeddings.max_positions)
    dynamic = {name: {0: batch_dim, 1: seq_dim} for name in graph.input_names()}
    was_training = module.training
    module.eval()
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
                target = Path(tmp) / path.name
                with quiet_exporter(), torch.no_grad():
                    torch.onnx.export(
                        graph,
                        example,
                        str(target),
                        input_names=graph.input_names(),
                        output_names=graph.output_names(),
                        dynamic_shapes=dynamic,
                        dynamo=True,
                        external_data=_param_bytes(module) > 1 << 30,  # one file unless near protobuf's 2 GiB
                        verbose=False,
                    )
                for produced in Path(tmp).iterdir():  # the model, and external data for large models
                    os.replace(produced, path.parent / produced.name)
    finally:
        module.train(was_training)


def _param_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter prints progress and warns about optional packages (torchvision); keep errors."""
    loggers = [
        logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as devnull, warnings.catch_warnings(), contextlib.redirect_stdout(devnull):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def onnx_max_abs_diff(model, path: str | os.PathLike, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between ``model`` (eval mode, fp32) and the ONNX file under
    onnxruntime on ``inputs`` (``input_ids``, optionally ``attention_mask`` and ``token_type_ids``)."""
    from .deploy import session  # imports onnx_ir (slow): only to check an ONNX file

    module, head, spec, _ = describe(model)
    graph = _OnnxGraph(module, head, spec)
    example = graph.example(inputs)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            expected = graph(*example)
    finally:
        module.train(was_training)
    expected = expected if isinstance(expected, tuple) else (expected,)
    feed = {name: t.cpu().numpy().astype("int64") for name, t in zip(graph.input_names(), example)}
    got = session(path).run(None, feed)
    if len(got) != len(expected):
        raise ValueError(f"{path}: {len(got)} outputs, the model has {len(expected)}")
    return max(float(abs(torch.from_numpy(g) - e.float()).max()) for g, e in zip(got, expected))
