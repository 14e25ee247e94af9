"""The task registry: the GLUE tasks and rotten-tomatoes, names and aliases, custom task YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertsmith.data import TASKS, get_task, load_task_file, resolve_task
from bertsmith.data.tasktypes import CLASSIFICATION, REGRESSION
from bertsmith.errors import DataError

from .conftest import write_lines


def test_glue_tasks_and_their_metrics():
    expected = {
        "cola": ("matthews_corrcoef",),
        "sst2": ("accuracy",),
        "mrpc": ("f1", "accuracy"),
        "stsb": ("pearson", "spearmanr"),
        "qqp": ("f1", "accuracy"),
        "mnli": ("accuracy",),
        "qnli": ("accuracy",),
        "rte": ("accuracy",),
        "rotten-tomatoes": ("accuracy",),
        "squad": ("f1", "exact_match"),
        "squad_v2": ("f1", "exact_match"),
    }
    assert {name: task.metrics for name, task in TASKS.items()} == expected
    assert get_task("mrpc").main_metric == "f1"
    assert get_task("stsb").task_type is REGRESSION and get_task("stsb").num_labels == 1
    assert get_task("mnli").num_labels == 3 and get_task("mnli").task_type is CLASSIFICATION
    assert list(get_task("mnli").splits) == [
        "train",
        "dev_matched",
        "dev_mismatched",
        "test_matched",
        "test_mismatched",
    ]
    assert get_task("mnli").hub.splits["dev_matched"] == "validation_matched"
    assert get_task("rotten-tomatoes").labels == ("rotten", "fresh")


@pytest.mark.parametrize("name", ["SST-2", "sst-2", "sst2", "Sst_2"])
def test_names_are_case_insensitive_with_aliases(name):
    assert get_task(name) is TASKS["sst2"]
    assert get_task("STS-B") is TASKS["stsb"] and get_task("Rotten_Tomatoes") is TASKS["rotten-tomatoes"]


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(DataError, match=r"unknown task 'glue9' \(known: cola, sst2, .*rotten-tomatoes"):
        resolve_task("glue9")


def task_yaml(tmp_path: Path, text: str) -> Path:
    return write_lines(tmp_path / "task.yaml", [text])


def test_custom_task_infers_sorted_labels_from_train(tmp_path: Path):
    write_lines(tmp_path / "data" / "train.csv", ["text,label", "a,10", "b,2", "c,2"])
    write_lines(tmp_path / "data" / "dev.csv", ["text,label", "d,10"])
    path = task_yaml(tmp_path, "name: mine\nfiles: {train: data/train.csv, dev: data/dev.csv}\ntext_columns: [text]")
    task = resolve_task(str(path))
    assert task.labels == ("2", "10") and task.metrics == ("accuracy",) and task.origin == "files"
    assert task.splits == {"train": str(tmp_path / "data" / "train.csv"), "dev": str(tmp_path / "data" / "dev.csv")}


def test_custom_regression_and_hub_tasks(tmp_path: Path):
    path = task_yaml(
        tmp_path,
        "name: r\nfiles: {train: t.jsonl, dev: d.tsv, test: e.csv}\n"
        "text_columns: [a, b]\nlabel_column: y\ntype: regression",
    )
    task = load_task_file(path)
    assert (
        task.task_type is REGRESSION
        and task.metrics == ("pearson", "spearmanr")
        and list(task.splits) == ["train", "dev", "test"]
    )
    hub = load_task_file(
        task_yaml(
            tmp_path,
            "name: h\nhub: some/data\nconfig: c\ntext_columns: [t]\nlabels: [neg, pos]\nmetrics: [f1, accuracy]",
        )
    )
    assert (hub.origin, hub.hub.name, hub.hub.config, hub.main_metric) == ("hub", "some/data", "c", "f1")
    assert hub.hub.splits == {"train": "train", "dev": "validation", "test": "test"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\nfiles: {train: a.csv, dev: b.csv}", "text_columns: required"),
        ("name: x\nfiles: {train: a.csv, dev: b.csv}\ntext_columns: [t]\ncolour: red", "colour: unknown field"),
        ("name: x\nfiles: {train: a.csv}\ntext_columns: [t]", "files.dev: required"),
        ("name: x\nfiles: {train: a.csv, dev: b.csv}\ntext_columns: [a, b, c]", "text_columns:"),
        ("name: x\nfiles: {train: a.csv, dev: b.csv}\nhub: y\ntext_columns: [t]", "either files .* or hub, not both"),
        ("name: x\ntext_columns: [t]", "not neither"),
        ("name: x\nfiles: {train: a.txt, dev: b.csv}\ntext_columns: [t]", "a.txt: unknown file format"),
        ("name: x\nhub: y\ntext_columns: [t]", "a hub classification task must list its labels"),
        ("name: x\nhub: y\ntext_columns: [t]\ntype: regression\nlabels: [a, b]", "a regression task has no labels"),
        ("name: x\nhub: y\ntext_columns: [t]\ntype: ranking", "type: unknown task type 'ranking'"),
        ("name: x\nhub: y\ntext_columns: [t]\nlabels: [a, b]\nmetrics: [bleu]", "unknown metric 'bleu'"),
        ("name: x\nhub: y\ntext_columns: [t]\nlabels: [a, b]\nmetrics: [pearson]", "pearson does not apply"),
        ("name: x\nhub: y\ntext_columns: [t]\nlabels: [a, a]", "has duplicates"),
        ("name: x\nhub: y\ntext_columns: [t]\nlabel_column: t\nlabels: [a, b]", "also a text column"),
        ("- just\n- a list", "expected a mapping"),
        ("name: [unclosed", "unreadable YAML"),
    ],
)
def test_bad_task_files(tmp_path: Path, text: str, message: str):
    path = task_yaml(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        load_task_file(path)
    assert str(path) in str(info.value)


def test_label_inference_names_the_bad_line(tmp_path: Path):
    write_lines(tmp_path / "train.tsv", ["text\tlabel", "a\tx", "b\t "])
    path = task_yaml(tmp_path, "name: x\nfiles: {train: train.tsv, dev: train.tsv}\ntext_columns: [text]")
    with pytest.raises(DataError, match=r"train.tsv, line 3, column 'label': empty"):
        load_task_file(path)


def test_missing_task_file(tmp_path: Path):
    with pytest.raises(DataError, match="nope.yaml: cannot read task file"):
        resolve_task(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"train.csv: the file is empty$"),
        (b"text,label\n", r"train.csv: no data rows$"),
    ],
)
def test_label_inference_from_a_train_file_without_rows_says_so(tmp_path: Path, content: bytes, message: str):
    (tmp_path / "train.csv").write_bytes(content)
    path = task_yaml(tmp_path, "name: x\nfiles: {train: train.csv, dev: train.csv}\ntext_columns: [text]")
    with pytest.raises(DataError, match=message):
        load_task_file(path)
