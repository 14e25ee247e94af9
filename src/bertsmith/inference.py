"""``bertsmith predict``: class names (or regression scores) for texts, or answers to questions from
their contexts, from an exported model.

A ``Classifier`` is a model directory's tokenizer, class names (config.json's ``id2label``) and either
its PyTorch weights (any checkpoint ``bertsmith.hf.import_checkpoint`` reads) or one of its ONNX files
under onnxruntime. Files are read row by row and written in batches to a scratch file that is renamed
into place at the end, so a file larger than memory streams through and an interrupted run leaves no
output that looks complete.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.readers import read_rows
from .data.tasktypes import EXTRACTIVE_QA, TaskType, task_type_of_head
from .distill.task import load_tokenizer
from .errors import CheckpointError, ConfigError, DataError
from .hf import import_checkpoint
from .modeling import BertsmithForQuestionAnswering, BertsmithForSequenceClassification

BACKENDS = ("torch", "onnxruntime")
OUT_FORMATS = (".jsonl", ".csv")
DEFAULT_MAX_LENGTH = 128
# Text columns looked for in a file when none are named: (text, pair) in order of preference.
TEXT_COLUMNS = (
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("question", "context"),
    ("question", "sentence"),
    ("premise", "hypothesis"),
    ("text", None),
    ("sentence", None),
)


@dataclass
class Classifier:
    """What ``predict`` needs: the model (``model(ids, mask, types) → (logits, _)``), its tokenizer,
    the class names (None for regression), the token limit and the head's task type (which turns
    logits into results)."""

    model: torch.nn.Module
    tokenizer: object
    labels: list[str] | None
    max_length: int
    task_type: TaskType


def load_classifier(
    directory: str | os.PathLike,
    *,
    backend: str = "torch",
    onnx_file: str = "model.onnx",
    max_length: int | None = None,
) -> Classifier:
    """The classifier (or question-answering model) in ``directory`` on ``backend`` (``torch`` or
    ``onnxruntime`` with ``onnx_file``), truncating texts to ``max_length`` tokens (default: 128, for QA 384,
    or the model's positions when fewer; a QA context longer than that is read in overlapping windows)."""
    directory = Path(directory)
    if backend not in BACKENDS:
        raise ConfigError(f"--backend: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory}: not a model directory (no config.json)")
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if backend == "onnxruntime":
        from .hf.deploy import OnnxClassifier  # ONNX's packages (slow to import): only for this backend

        path = directory / onnx_file
        if not path.is_file():
            raise CheckpointError(
                f"{path}: no such ONNX file; write it with `bertsmith export {directory} OUT_DIR "
                f"--onnx` (or `--quantize int8` for model.int8.onnx), or use --backend torch"
            )
        model: torch.nn.Module = OnnxClassifier(path)
        spec = None  # the tokenizer files are checked; the ONNX graph's shape is not read back
        num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
        positions = int(config.get("max_position_embeddings", DEFAULT_MAX_LENGTH))
        qa = model.head == "qa"
    else:
        imported = import_checkpoint(directory)
        qa = isinstance(imported.model, BertsmithForQuestionAnswering)
        if not (qa or isinstance(imported.model, BertsmithForSequenceClassification)):
            raise CheckpointError(
                f"{directory}: the model has no sequence-classification or question-answering head; predict "
                "needs a fine-tuned model (the export of `bertsmith run`, `distill` or `teacher`)"
            )
        model, num_labels = imported.model.eval(), imported.num_labels
        positions, spec = imported.spec.embeddings.max_tokens, imported.spec
    task_type = EXTRACTIVE_QA if qa else task_type_of_head(num_labels)
    if max_length is None:
        max_length = min(DEFAULT_MAX_LENGTH if not qa else task_type.default_max_length, positions)
    elif max_length < 2:
        raise ConfigError(f"--max-length {max_length}: a text needs at least 2 tokens ([CLS] and [SEP])")
    if max_length > positions:
        raise ConfigError(f"--max-length {max_length} is more than the model's {positions} positions")
    names = config.get("id2label") or {}
    labels = [str(names.get(str(i), f"LABEL_{i}")) for i in range(num_labels)] if task_type.named_labels else None
    return Classifier(model, load_tokenizer(directory, spec, max_length), labels, max_length, task_type)


@torch.no_grad()
def predict_batch(clf: Classifier, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[dict]:
    """One result per text: ``{"label", "score", "scores"}`` (class probabilities), ``{"score"}`` for a
    regression model, or for a QA model (texts: questions, pairs: their contexts) ``{"answer", "score",
    "start", "end"}``."""
    return clf.task_type.predict_texts(
        clf.model,
        clf.tokenizer,
        list(texts),
        list(pairs) if pairs is not None else None,
        max_length=clf.max_length,
        names=clf.labels,
    )


def file_texts(
    path: Path, text_column: str | None = None, pair_column: str | None = None
) -> Iterator[tuple[str, str | None]]:
    """(text, pair) per row of a CSV/TSV/JSONL file, streamed. Without ``text_column`` the first of
    ``TEXT_COLUMNS`` found in the first row is used. The columns are checked here, before any row is yielded."""
    rows = read_rows(path)
    first = next(rows)  # read_rows refuses a file without rows
    columns = list(first[1])
    if text_column is None:
        both = ((a, b) for a, b in TEXT_COLUMNS if a in columns and b in columns)  # a pair's two columns first
        found = next(both, None) or next(((a, b) for a, b in TEXT_COLUMNS if a in columns), None)
        if found is None:
            raise DataError(
                f"{path}: no text column found among {columns}; name it with --text-column "
                f"(and --pair-column for sentence pairs)"
            )
        text_column, pair_column = found[0], pair_column or (found[1] if found[1] in columns else None)
    for name in (text_column, pair_column):
        if name is not None and name not in columns:
            raise DataError(f"{path}: no column {name!r} (the file has {columns})")
    return _texts(path, itertools.chain([first], rows), text_column, pair_column)


def _texts(path: Path, rows: Iterator, text_column: str, pair_column: str | None) -> Iterator[tuple[str, str | None]]:
    for line, row in rows:
        values = []
        for name in (text_column, pair_column):
            value = row.get(name) if name is not None else None
            if name is not None and not isinstance(value, str):
                raise DataError(f"{path}:{line}: column {name!r}: expected text, got {value!r}")
            values.append(value)
        yield values[0], values[1]


def write_predictions(
    clf: Classifier, items: Iterable[tuple[str, str | None]], out: Path | None, *, batch_size: int = 32, on_batch=None
) -> int:
    """Predict ``items`` in batches and write one result per item to ``out`` (JSONL or CSV by its
    extension; None: JSONL on stdout). Returns the number of rows written."""
    if out is not None and out.suffix.lower() not in OUT_FORMATS:
        raise ConfigError(f"--out {out}: unknown output format (use {' or '.join(OUT_FORMATS)})")
    partial = None if out is None else out.with_name(f".{out.name}.partial")
    try:
        if partial is not None:
            partial.parent.mkdir(parents=True, exist_ok=True)
        handle = (
            contextlib.nullcontext(sys.stdout) if partial is None else open(partial, "w", encoding="utf-8", newline="")
        )
        with handle as handle:
            writer = _writer(handle, clf, csv_out=out is not None and out.suffix.lower() == ".csv")
            written = 0
            for batch in _batches(items, batch_size):
                pairs = [p for _, p in batch]
                results = predict_batch(clf, [t for t, _ in batch], pairs if pairs[0] is not None else None)
                for result in results:
                    writer(result)
                written += len(batch)
                if on_batch is not None:
                    on_batch(len(batch))
        if partial is not None:
            os.replace(partial, out)
    except OSError as exc:
        raise ConfigError(f"{out or 'stdout'}: cannot write the predictions ({exc.strerror or exc})") from None
    finally:
        if partial is not None and partial.exists():
            partial.unlink()
    return written


def _writer(handle, clf: Classifier, *, csv_out: bool):
    """A function writing one result to ``handle`` as a JSON line or a CSV row (header first)."""
    if not csv_out:
        return lambda result: handle.write(json.dumps(result, ensure_ascii=False) + "\n")
    writer = csv.writer(handle)
    writer.writerow(clf.task_type.output_fields(clf.labels))
    return lambda result: writer.writerow(clf.task_type.csv_row(result, clf.labels))


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
