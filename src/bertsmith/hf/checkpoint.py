"""Import a checkpoint directory (or hub name) into bertsmith modules: ``import_checkpoint``.

Reads ``config.json`` and the weights (``model.safetensors``, sharded safetensors, or
``pytorch_model.bin`` through ``torch.load(weights_only=True)``: nothing else is ever unpickled),
builds the ArchSpec and the bertsmith model, maps every tensor (``mapping.py``) with a shape check,
and loads them. Every problem is a one-line ``CheckpointError`` that names the file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..arch import ArchSpec
from ..errors import CheckpointError, ConfigError, SpecError
from ..modeling import (
    BertsmithForMaskedLM,
    BertsmithForQuestionAnswering,
    BertsmithForSequenceClassification,
    BertsmithModel,
)
from . import mapping
from .mapping import HEADS, HF_SOURCES, QA_OUTPUTS, TIED_DECODER, Entry

SUPPORTED = (*HF_SOURCES, "bertsmith")
SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
PT_BIN, PT_BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
# transformers buffers that some checkpoints carry; not weights.
_IGNORED = re.compile(r"(^|\.)(position_ids|token_type_ids)$")


@dataclass
class ImportedModel:
    """A checkpoint as bertsmith modules. ``model`` is a ``BertsmithModel``, or a
    ``BertsmithForSequenceClassification`` / ``BertsmithForMaskedLM`` / ``BertsmithForQuestionAnswering``
    with the head; ``source`` is the checkpoint's model_type; ``num_labels`` is set for classification
    models, and is 2 (start, end logits) for question answering; ``directory`` is
    the local directory read (a hub snapshot for a hub name), e.g. for its tokenizer files; ``labels``
    are the class names of config.json's ``id2label`` when it names them (not ``LABEL_0`` ...)."""

    spec: ArchSpec
    model: torch.nn.Module
    source: str
    num_labels: int | None = None
    directory: str = ""
    labels: tuple[str, ...] | None = None


# ---- files ----------------------------------------------------------------------------------
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_checkpoint(name_or_dir: str | os.PathLike) -> Path:
    """A local directory as is; otherwise a hub name fetched through huggingface_hub."""
    path = Path(name_or_dir).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: not a directory (a checkpoint is a directory with config.json)")
        return path
    text = str(name_or_dir)
    if not _REPO_ID.match(text) or ".." in text:
        raise CheckpointError(f"{path}: no such checkpoint directory")
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.txt", "*.model", SAFETENSORS, "model-*.safetensors"]
        local = Path(snapshot_download(text, allow_patterns=patterns))
        if not any(local.glob("*.safetensors")):
            local = Path(snapshot_download(text, allow_patterns=[*patterns, "pytorch_model*.bin"]))
        return local
    except Exception as exc:  # offline, unknown repository, network: all end here
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        raise CheckpointError(
            f"{text}: no such directory, and fetching it from the Hugging Face hub failed ({reason}); "
            "pass a local checkpoint directory"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # no terminal colour codes
    return text.splitlines()[0] if text else type(exc).__name__


def read_config(directory: Path) -> tuple[dict, Path]:
    path = directory / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (a checkpoint directory needs config.json)") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not UTF-8 text") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(cfg).__name__}")
    return cfg, path


class Weights:
    """The tensors of a checkpoint and the file each came from (for messages)."""

    def __init__(self, main: Path):
        self.main = main
        self.tensors: dict[str, torch.Tensor] = {}
        self.files: dict[str, Path] = {}

    def add(self, tensors: dict[str, torch.Tensor], file: Path) -> None:
        for key, tensor in tensors.items():
            key = _legacy_name(key)
            self.tensors[key] = tensor
            self.files[key] = file

    def file_of(self, key: str) -> Path:
        return self.files.get(key, self.main)


def _legacy_name(key: str) -> str:
    """TF-era BERT checkpoints name LayerNorm parameters gamma and beta."""
    if key.endswith("LayerNorm.gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith("LayerNorm.beta"):
        return key[: -len("beta")] + "bias"
    return key


def read_weights(directory: Path) -> Weights:
    """model.safetensors (preferred), sharded safetensors, pytorch_model.bin (sharded or not)."""
    for name in (SAFETENSORS, SAFETENSORS_INDEX, PT_BIN, PT_BIN_INDEX):
        path = directory / name
        if not path.is_file():
            continue
        weights = Weights(path)
        if name.endswith(".index.json"):
            for shard in _shards(path):
                weights.add(_read_file(shard), shard)
        else:
            weights.add(_read_file(path), path)
        return weights
    raise CheckpointError(
        f"{directory / SAFETENSORS}: missing (no {SAFETENSORS}, {SAFETENSORS_INDEX}, {PT_BIN} or {PT_BIN_INDEX} "
        f"in {directory})"
    )


def _shards(index: Path) -> list[Path]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        files = sorted(set(data["weight_map"].values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{index}: not a readable weight index ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    shards = []
    for name in files:
        shard = index.parent / name
        if not isinstance(name, str) or Path(name).name != name or not shard.is_file():
            raise CheckpointError(f"{index}: shard {name!r} is missing")
        shards.append(shard)
    return shards


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:  # SafetensorError, OSError, ...: corrupt or truncated file
            raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, or content that weights_only loading refuses
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
            raise CheckpointError(
                f"{path}: holds objects other than tensors; refused (only weights are loaded, never arbitrary pickles)"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({_first_line(exc)})") from None
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a flat dict of tensors")
    return data


# ---- import ---------------------------------------------------------------------------------
def _found_head(source: str, keys: set[str], cfg: dict) -> str:
    """The head a checkpoint holds: "qa", "classification", "mlm" or "base". bertsmith's own QA and
    classification heads share names (``head.out``), so config.json's ``architectures`` tells them apart."""
    if source == "bertsmith":
        architectures = cfg.get("architectures")
        if isinstance(architectures, list) and "BertsmithForQuestionAnswering" in architectures:
            return "qa"
        if "head.out.weight" in keys:
            return "classification"
        return "mlm" if "transform.weight" in keys else "base"
    if f"{QA_OUTPUTS}.weight" in keys:
        return "qa"
    if source == "bert":
        if "classifier.weight" in keys:
            return "classification"
        return "mlm" if "cls.predictions.transform.dense.weight" in keys else "base"
    if source == "distilbert":
        if "pre_classifier.weight" in keys:
            return "classification"
        return "mlm" if "vocab_projector.weight" in keys or "vocab_transform.weight" in keys else "base"
    if "classifier.out_proj.weight" in keys:
        return "classification"
    probe = "lm_head.dense.weight" if source in ("roberta", "mpnet") else "generator_predictions.dense.weight"
    return "mlm" if probe in keys else "base"


def _num_labels(source: str, found: str, weights: Weights, cfg: dict) -> int:
    if found == "classification":
        key = {"bertsmith": "head.out.weight", "bert": "classifier.weight", "distilbert": "classifier.weight"}.get(
            source, "classifier.out_proj.weight"
        )
        return int(weights.tensors[key].shape[0])
    n = cfg.get("num_labels")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return n
    labels = cfg.get("id2label")
    return len(labels) if isinstance(labels, dict) and labels else 2


def _encoder_prefix(source: str, keys: set[str], file: Path) -> str:
    probe = "embeddings.word.weight" if source == "bertsmith" else "embeddings.word_embeddings.weight"
    prefix = "encoder." if source == "bertsmith" else mapping.BASE_PREFIX[source]
    if prefix + probe in keys:
        return prefix
    if probe in keys:
        return ""
    raise CheckpointError(f"{file}: {probe}: missing (found no {source} encoder weights)")


def import_checkpoint(
    name_or_dir: str | os.PathLike, *, head: str | None = None, spec: ArchSpec | None = None
) -> ImportedModel:
    """Load a BERT / RoBERTa / ConvBERT / ELECTRA / DistilBERT / MPNet checkpoint (MiniLM is BERT), or a
    directory bertsmith exported, into bertsmith modules.

    ``head``: None keeps the checkpoint's head (none, sequence classification, masked LM, extractive
    question answering); "base", "classification", "mlm" or "qa" ask for one (a head missing from the
    checkpoint is freshly initialised; "base" drops the checkpoint's head). A QA model from a
    transformers checkpoint has no pooler (as transformers' QA models; a base checkpoint's is dropped).
    ``spec``: load the weights into this spec instead of the one the config describes (every shape
    must then match). Raises CheckpointError.
    """
    if head is not None and head not in HEADS:
        raise ConfigError(f"head = {head!r}: expected one of {', '.join(HEADS)} (or None for the checkpoint's own)")
    directory = resolve_checkpoint(name_or_dir)
    cfg, cfg_path = read_config(directory)
    source = cfg.get("model_type")
    if source not in SUPPORTED:
        raise CheckpointError(
            f"{cfg_path}: model_type = {source!r} is not supported (supported: {', '.join(SUPPORTED)})"
        )
    weights = read_weights(directory)
    keys = set(weights.tensors)
    their_prefix = _encoder_prefix(source, keys, weights.main)
    found = _found_head(source, keys, cfg)
    head = head or found
    if head == found == "qa":
        _check_qa_outputs(weights, source)
    if source == "distilbert" and head == "mlm":
        raise CheckpointError(
            f"{weights.main}: DistilBERT's masked-LM head (vocab_transform, vocab_projector) has no bertsmith "
            "equivalent; import the encoder with head='base'"
        )
    if spec is None:
        if source == "bertsmith":
            try:
                spec = ArchSpec.from_dict(cfg.get("spec"), source=f"{cfg_path}: spec")
            except SpecError as exc:
                raise CheckpointError(str(exc)) from None
        else:
            # transformers' QA models have no pooler (a base checkpoint's one is dropped, as they do)
            pooler = head != "qa" and f"{their_prefix}pooler.dense.weight" in keys
            spec = mapping.spec_from_config(cfg, source, pooler=pooler, where=str(cfg_path))
    elif not isinstance(spec, ArchSpec):
        raise ConfigError(f"spec: expected an ArchSpec, got {type(spec).__name__}")
    else:
        mapping.check_spec_fits_source(spec, source, str(cfg_path))
    _check_head_activation(cfg, source, head, found, cfg_path)

    num_labels = _num_labels(source, found, weights, cfg) if head == "classification" else None
    if head == "classification":
        model = BertsmithForSequenceClassification(spec, num_labels=num_labels)
    elif head == "qa":
        model = BertsmithForQuestionAnswering(spec)
        num_labels = model.num_labels
    elif head == "mlm":
        model = BertsmithForMaskedLM(spec)
    else:
        model = BertsmithModel(spec)
    if source == "bertsmith":
        entries = _own_entries(model.state_dict(), head, their_prefix)
    else:
        entries = mapping.model_entries(spec, source, head, their_prefix)
    fresh_head = head != found
    if fresh_head:  # its tensors are not in the checkpoint: they keep their initialisation
        entries = [e for e in entries if e.ours.startswith("encoder.") or head == "base"]
    _load(model, spec, entries, weights, head, source, their_prefix, fresh_head=fresh_head)
    labels = _labels(cfg, num_labels) if head == "classification" else None
    return ImportedModel(spec, model.eval(), source, num_labels, str(directory), labels)


def _check_qa_outputs(weights: Weights, source: str) -> None:
    """A QA head maps each token to two logits (start, end); anything else is not extractive QA."""
    key = "head.out.weight" if source == "bertsmith" else f"{QA_OUTPUTS}.weight"
    tensor = weights.tensors.get(key)
    if tensor is not None and (tensor.dim() != 2 or tensor.shape[0] != 2):
        raise CheckpointError(
            f"{weights.file_of(key)}: {key}: shape {tuple(tensor.shape)}: a question-answering head has 2 outputs "
            "(start and end logits)"
        )


def _labels(cfg: dict, num_labels: int | None) -> tuple[str, ...] | None:
    """The class names in config.json's ``id2label``, or None when absent or transformers' defaults."""
    id2label = cfg.get("id2label")
    if not num_labels or not isinstance(id2label, dict) or len(id2label) != num_labels:
        return None
    try:
        names = tuple(str(id2label[key]) for key in sorted(id2label, key=int))
    except ValueError:
        return None
    return None if names == tuple(f"LABEL_{i}" for i in range(num_labels)) else names


def _own_entries(state: dict, head: str, their_prefix: str) -> list[Entry]:
    """A directory bertsmith wrote: bertsmith's names; only the encoder's prefix may differ (a
    base-model directory loaded with a head, or the other way round)."""
    entries = []
    for key in state:
        if key == TIED_DECODER["bertsmith"]:
            continue
        if head == "base":
            entries.append(Entry(key, (their_prefix + key,)))
        elif key.startswith("encoder."):
            entries.append(Entry(key, (their_prefix + key.removeprefix("encoder."),)))
        else:
            entries.append(Entry(key, (key,)))
    return entries


def _check_head_activation(cfg: dict, source: str, head: str, found: str, cfg_path: Path) -> None:
    """transformers' BERT MLM head and ConvBERT classification head use ``hidden_act``; bertsmith's
    heads use gelu. Only a checkpoint head with another activation is a problem."""
    if head != found or source not in ("bert", "convbert"):
        return
    if (source, head) in (("bert", "mlm"), ("convbert", "classification")):
        act = mapping.activation_from_hf(cfg, source, str(cfg_path))
        if act != "gelu":
            raise CheckpointError(
                f"{cfg_path}: hidden_act = {cfg.get('hidden_act')!r}: the {source} {head} head would use it, "
                "bertsmith's head uses gelu; import with head='base'"
            )


def _load(model, spec, entries, weights: Weights, head, source, their_prefix, *, fresh_head: bool) -> None:
    """Check every tensor's presence and shape, then load them (the tied decoder follows)."""
    target = model.state_dict()
    expected_keys = {k for k in target if k != "decoder.weight"}
    covered = {e.ours for e in entries}
    unknown = covered - expected_keys
    if unknown:  # the mapping and the modules disagree: a bug, not a user error
        raise RuntimeError(f"bertsmith.hf mapping names tensors the model lacks: {sorted(unknown)[:5]}")
    missing_ours = expected_keys - covered
    if not fresh_head:
        if missing_ours:
            raise RuntimeError(f"bertsmith.hf mapping misses model tensors: {sorted(missing_ours)[:5]}")
    new: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for entry in entries:
        shape = tuple(target[entry.ours].shape)
        parts = []
        for name, want in zip(entry.theirs, entry.their_shapes(shape)):
            key = next((k for k in (*entry.preferred, name) if k in weights.tensors), None)
            if key is None:
                raise CheckpointError(
                    f"{weights.main}: {name}: missing (needed for {mapping.field_of(spec, entry.ours)})"
                )
            tensor = weights.tensors[key]
            if tuple(tensor.shape) != want:
                raise CheckpointError(
                    f"{weights.file_of(key)}: {key}: expected shape {want} from {mapping.field_of(spec, entry.ours)}, "
                    f"found {tuple(tensor.shape)}"
                )
            if not tensor.is_floating_point():
                raise CheckpointError(
                    f"{weights.file_of(key)}: {key}: expected floating-point weights, found {tensor.dtype}"
                )
            parts.append(tensor)
            used.add(key)
        new[entry.ours] = entry.combine(parts)
    _check_unexpected(weights, used, source, their_prefix)
    result = model.load_state_dict(new, strict=False)
    left = set(result.missing_keys) - {"decoder.weight"} - (missing_ours if fresh_head else set())
    if left:
        raise RuntimeError(f"bertsmith.hf import left tensors unset: {sorted(left)[:5]}")
    _untie_decoder_if_needed(model, weights, source, head)


def _untie_decoder_if_needed(model, weights: Weights, source: str, head: str) -> None:
    """bertsmith ties the MLM decoder to the token embeddings; a checkpoint with its own decoder
    weight (tie_word_embeddings false) gets it, untied."""
    if head != "mlm":
        return
    key = TIED_DECODER[source]
    decoder = weights.tensors.get(key)
    word = model.encoder.embeddings.word.weight
    if decoder is None or (decoder.shape == word.shape and torch.equal(decoder.to(word.dtype), word.detach())):
        return
    if tuple(decoder.shape) != tuple(word.shape):
        raise CheckpointError(
            f"{weights.file_of(key)}: {key}: expected shape {tuple(word.shape)} (vocab_size, embedding size), "
            f"found {tuple(decoder.shape)}"
        )
    model.decoder.weight = torch.nn.Parameter(decoder.to(word.dtype).clone())


def _check_unexpected(weights: Weights, used: set[str], source: str, their_prefix: str) -> None:
    """Encoder tensors the spec does not account for (e.g. more layers than the config says)."""
    if source == "bertsmith":
        encoder = (their_prefix + "embeddings.", their_prefix + "layers.", their_prefix + "pooler.")
    else:
        encoder = (
            their_prefix + "embeddings",
            their_prefix + ("transformer." if source == "distilbert" else "encoder."),
        )
    for key in sorted(weights.tensors):
        if key in used or _IGNORED.search(key) or not key.startswith(encoder):
            continue
        raise CheckpointError(
            f"{weights.file_of(key)}: {key}: unexpected encoder tensor (not in the spec: does config.json match "
            "the weights?)"
        )
