"""Loading splits from GLUE directories, task files and local hub-style datasets; every bad input is
one DataError naming the file, the line and the column."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from bertsmith.data import get_task, load_split, load_task_file
from bertsmith.errors import DataError

from .conftest import GLUE_FILES, write_lines

GLUE_EXPECTED = {  # task → split → (rows, labels or None)
    "cola": {"train": (2, [1, 0]), "dev": (1, [1]), "test": (1, None)},
    "sst2": {"train": (2, [0, 1]), "dev": (1, [1]), "test": (1, None)},
    "mrpc": {"train": (2, [1, 0]), "dev": (1, [1]), "test": (1, None)},
    "stsb": {"train": (2, [5.0, 0.5]), "dev": (1, [4.25]), "test": (1, None)},
    "qqp": {"train": (2, [0, 1]), "dev": (1, [1]), "test": (1, None)},
    "mnli": {
        "train": (2, [0, 1]),
        "dev_matched": (1, [2]),
        "dev_mismatched": (1, [2]),
        "test_matched": (1, None),
        "test_mismatched": (1, None),
    },
    "qnli": {"train": (2, [0, 1]), "dev": (1, [0]), "test": (1, None)},
    "rte": {"train": (2, [1, 0]), "dev": (1, [0]), "test": (1, None)},
}


@pytest.mark.parametrize("name", GLUE_EXPECTED)
def test_every_glue_layout(glue_dir: Path, name: str):
    task = get_task(name)
    for split, (rows, labels) in GLUE_EXPECTED[name].items():
        loaded = load_split(task, split, data_dir=glue_dir)
        assert len(loaded) == rows and loaded.labels == labels, split
        assert all(len(texts) == len(task.text_columns) for texts in loaded.texts)
        assert loaded.source == str(glue_dir / task.glue_folder / f"{split}.tsv")


def test_mrpc_bom_and_unbalanced_quotes(glue_dir: Path):
    train = load_split(get_task("mrpc"), "train", data_dir=glue_dir)
    assert train.texts[0] == ('He said "the witness, of course.', '"The witness" said so.')
    assert load_split(get_task("mrpc"), "dev", data_dir=glue_dir).texts == [('"Open quote.', "No quote.")]


def test_cola_headerless_and_labeled_test_file(glue_dir: Path):
    cola = load_split(get_task("cola"), "train", data_dir=glue_dir)
    assert cola.texts == [("Our friends won't buy this analysis.",), ("They drank the pub.",)]
    write_lines(glue_dir / "SST-2" / "test-labeled.tsv", ["sentence\tlabel", "uneasy mishmash of styles .\t0"])
    test = load_split(get_task("sst2"), "test", data_dir=glue_dir)
    assert test.labels == [0] and test.source.endswith("test-labeled.tsv")


def test_sha256_follows_the_rows_not_the_bytes(glue_dir: Path):
    task = get_task("sst2")
    before = load_split(task, "dev", data_dir=glue_dir).sha256
    write_lines(glue_dir / "SST-2" / "dev.tsv", ["label\tsentence", "1\tit 's a charming journey . "])
    assert load_split(task, "dev", data_dir=glue_dir).sha256 == before
    write_lines(glue_dir / "SST-2" / "dev.tsv", ["sentence\tlabel", "it 's a charming journey . \t0"])
    assert load_split(task, "dev", data_dir=glue_dir).sha256 != before


def sst2_file(glue_dir: Path, *lines: str, raw: bytes | None = None) -> Path:
    path = glue_dir / "SST-2" / "train.tsv"
    if raw is not None:
        path.write_bytes(raw)
    else:
        write_lines(path, list(lines))
    return path


@pytest.mark.parametrize(
    "lines, message",
    [
        (["text\tlabel", "good\t1"], r"line 2, column 'sentence': missing \(found: text, label\)"),
        (
            ["sentence\tlabel", "good\t1", "bad\t2"],
            r"line 3, column 'label': label '2' is not one of the task's labels \(0, 1\)",
        ),
        (["sentence\tlabel", "good\t1", " \t0"], r"line 3, column 'sentence': empty"),
        (["sentence\tlabel", "good\t"], r"line 2, column 'label': empty"),
        (["sentence\tlabel", "good\t1", "", "bad\t0"], r"line 3: empty row"),
        (["sentence\tlabel", "good\t1\textra"], r"line 2: 3 fields, expected 2 \(sentence, label\)"),
        (["sentence\tlabel"], r"train.tsv: no data rows"),
    ],
)
def test_bad_rows(glue_dir: Path, lines: list[str], message: str):
    path = sst2_file(glue_dir, *lines)
    with pytest.raises(DataError, match=message) as info:
        load_split(get_task("sst2"), "train", data_dir=glue_dir)
    assert str(info.value).startswith(str(path))


def test_non_utf8_bytes_name_the_line(glue_dir: Path):
    path = sst2_file(glue_dir, raw=b"sentence\tlabel\ngood\t1\ncaf\xe9\t0\n")
    with pytest.raises(DataError, match=rf"^{path}, line 3: not UTF-8 text \(byte 0xe9 at character 4\)"):
        load_split(get_task("sst2"), "train", data_dir=glue_dir)


def test_regression_labels(glue_dir: Path):
    header = GLUE_FILES["STS-B"]["train.tsv"][0]
    row = "0\tg\tf\ty\t1\tnone\tnone\tA.\tB.\t"
    for label, message in [
        ("high", r"line 3, column 'score': 'high' is not a number"),
        ("5.5", r"line 3, column 'score': 5.5 is outside the task's label range \[0.0, 5.0\]"),
        ("nan", r"line 3, column 'score': nan is outside"),
    ]:
        write_lines(glue_dir / "STS-B" / "train.tsv", [header, row + "1.0", row + label])
        with pytest.raises(DataError, match=message):
            load_split(get_task("stsb"), "train", data_dir=glue_dir)


def test_missing_directory_folder_and_split(glue_dir: Path, tmp_path: Path):
    with pytest.raises(DataError, match=r"nowhere: GLUE data directory not found"):
        load_split(get_task("sst2"), "train", data_dir=tmp_path / "nowhere")
    (glue_dir / "MRPC" / "dev.tsv").unlink()
    with pytest.raises(DataError, match=r"MRPC/dev.tsv: mrpc dev file missing \(found: test.tsv, train.tsv\)"):
        load_split(get_task("mrpc"), "dev", data_dir=glue_dir)
    shutil.rmtree(glue_dir / "SST-2")
    with pytest.raises(
        DataError,
        match=r"SST-2: no SST-2 folder in the GLUE data directory "
        r"\(found: CoLA, MNLI, MRPC, QNLI, QQP, RTE, STS-B\)",
    ):
        load_split(get_task("sst2"), "train", data_dir=glue_dir)
    with pytest.raises(
        DataError, match=r"unknown split 'validation' \(the task has train, dev_matched, dev_mismatched"
    ):
        load_split(get_task("mnli"), "validation", data_dir=glue_dir)


def test_labels_only_optional_for_test_splits(glue_dir: Path):
    write_lines(glue_dir / "RTE" / "dev.tsv", ["index\tsentence1\tsentence2", "0\tD.\tD."])
    with pytest.raises(DataError, match=r"RTE/dev.tsv, line 2, column 'label': missing"):
        load_split(get_task("rte"), "dev", data_dir=glue_dir)


# ---- custom task files ----------------------------------------------------------------------------


def custom_task(tmp_path: Path, files: dict[str, list[str]], extra: str = "") -> Path:
    for name, lines in files.items():
        write_lines(tmp_path / name, lines)
    names = dict(zip(("train", "dev", "test"), files))
    return write_lines(tmp_path / "task.yaml", [f"name: mine\nfiles: {json.dumps(names)}\n{extra}"])


def test_custom_csv_tsv_jsonl(tmp_path: Path):
    path = custom_task(
        tmp_path,
        {
            "train.csv": ["id,text,other,label", '1,"Hello, ""world""",x,pos', '2,"two\nlines",y,neg'],
            "dev.tsv": ["text\tother\tlabel", "Fine\tz\tpos"],
            "test.jsonl": [json.dumps({"text": "Unlabelled", "other": "w"})],
        },
        "text_columns: [text, other]",
    )
    task = load_task_file(path)
    train = load_split(task, "train")
    assert task.labels == ("neg", "pos") and train.labels == [1, 0]
    assert train.texts == [('Hello, "world"', "x"), ("two\nlines", "y")]
    assert load_split(task, "dev").texts == [("Fine", "z")]
    test = load_split(task, "test")
    assert test.labels is None and test.source == str(tmp_path / "test.jsonl")


def test_custom_dev_label_outside_inferred_set(tmp_path: Path):
    path = custom_task(
        tmp_path,
        {"train.csv": ["text,label", "a,pos", "b,neg"], "dev.csv": ["text,label", "c,meh"]},
        "text_columns: [text]",
    )
    with pytest.raises(
        DataError, match=r"dev.csv, line 2, column 'label': label 'meh' is not one of the task's labels \(neg, pos\)"
    ):
        load_split(load_task_file(path), "dev")


def test_csv_errors_name_the_starting_line(tmp_path: Path):
    path = custom_task(
        tmp_path,
        {"train.csv": ["text,label", '"a\nb",pos', ",neg"], "dev.csv": ["text,label", "c,pos"]},
        "text_columns: [text]\nlabels: [neg, pos]",
    )
    with pytest.raises(DataError, match=r"train.csv, line 4, column 'text': empty"):
        load_split(load_task_file(path), "train")


def test_jsonl_regression_and_errors(tmp_path: Path):
    rows = [json.dumps({"a": "x", "y": 0.5}), json.dumps({"a": "z", "y": "2"})]
    path = custom_task(
        tmp_path,
        {"train.jsonl": rows, "dev.jsonl": rows + ["[1, 2]"]},
        "text_columns: [a]\nlabel_column: y\ntype: regression",
    )
    task = load_task_file(path)
    assert load_split(task, "train").labels == [0.5, 2.0]
    with pytest.raises(DataError, match=r"dev.jsonl, line 3: expected a JSON object, got list"):
        load_split(task, "dev")
    write_lines(tmp_path / "dev.jsonl", [rows[0], '{"a": "x", "y": tru}'])
    with pytest.raises(DataError, match=r"dev.jsonl, line 2: not valid JSON \(Expecting value at character 17\)"):
        load_split(task, "dev")
    write_lines(tmp_path / "dev.jsonl", [rows[0], json.dumps({"b": "x", "y": 1})])
    with pytest.raises(DataError, match=r"dev.jsonl, line 2, column 'a': missing \(found: b, y\)"):
        load_split(task, "dev")
    (tmp_path / "dev.jsonl").unlink()
    with pytest.raises(DataError, match=r"dev.jsonl: cannot read \(No such file or directory\)"):
        load_split(task, "dev")


# ---- the hub path, on local directories (datasets loads them offline) -----------------------------


def test_glue_from_hub_maps_mnli_labels(tmp_path: Path, datasets_cache: Path):
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features(
        premise=Value("string"),
        hypothesis=Value("string"),
        label=ClassLabel(names=["entailment", "neutral", "contradiction"]),
    )
    for split, labels in [("train", [0, 1, 2]), ("validation_matched", [2, 0, 1]), ("test_matched", [-1, -1, -1])]:
        data = {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": labels}
        Dataset.from_dict(data, features=features).to_parquet(
            tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet"
        )
    mnli = get_task("mnli")
    task = dataclasses.replace(mnli, hub=dataclasses.replace(mnli.hub, name=str(tmp_path / "hub"), config=None))
    # ours: contradiction, entailment, neutral; the hub's: entailment, neutral, contradiction
    assert load_split(task, "train").labels == [1, 2, 0]
    dev = load_split(task, "dev_matched")
    assert dev.labels == [0, 1, 2] and dev.texts[0] == ("p0", "h0") and dev.source.endswith("[validation_matched]")
    assert load_split(task, "test_matched").labels is None
    with pytest.raises(
        DataError,
        match=r"cannot load .*\[validation_mismatched\] from the Hugging Face hub "
        r"\(Unknown split .*\); offline, pass --data-dir",
    ):
        load_split(task, "dev_mismatched")


def test_hub_task_file_on_local_csv(tmp_path: Path, datasets_cache: Path):
    write_lines(tmp_path / "hub" / "train.csv", ["review,label", "good,1", "bad,0"])
    write_lines(tmp_path / "hub" / "validation.csv", ["review,label", "fine,1", "meh,7"])
    path = write_lines(
        tmp_path / "task.yaml", [f"name: h\nhub: {tmp_path / 'hub'}\ntext_columns: [review]\nlabels: [neg, pos]"]
    )
    task = load_task_file(path)
    train = load_split(task, "train")
    assert train.texts == [("good",), ("bad",)] and train.labels == [1, 0]
    with pytest.raises(DataError, match=r"hub \[validation\], row 1, column 'label': label '7' is not one of"):
        load_split(task, "dev")
    other = dataclasses.replace(task, text_columns=("text",))
    with pytest.raises(DataError, match=r"hub \[train\], column 'text': missing \(found: review, label\)"):
        load_split(other, "train")


def test_hub_failure_says_to_pass_data_dir(tmp_path: Path, datasets_cache: Path):
    (tmp_path / "empty").mkdir()
    sst2 = get_task("sst2")
    task = dataclasses.replace(sst2, hub=dataclasses.replace(sst2.hub, name=str(tmp_path / "empty"), config=None))
    with pytest.raises(
        DataError,
        match=r"^sst2: cannot load .*empty \[train\] from the Hugging Face hub \(.*\); "
        r"offline, pass --data-dir",
    ):
        load_split(task, "train")
