"""Fuzzing the task file readers and task YAML files (Hypothesis, the profile of tests/conftest.py).

Well-formed CSV, TSV and JSONL files, in any of the line endings and encodings that the readers
accept, read back to exactly the rows written; Latin-1 text that is not ASCII is refused. Any other
content (token soups of quotes, delimiters and line breaks, random bytes, corrupt .gz files, near-valid
task YAML files) gives rows or a ``DataError`` whose message is one line naming the file, never
another exception, and within ``fuzz.SECONDS``."""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from bertsmith.data.readers import cell_text, read_rows
from bertsmith.data.tasks import Task, load_task_file
from bertsmith.errors import DataError

from ..fuzz import outcome

ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"])
# cell text: any character but NUL (refused), lone surrogates (not encodable) and the byte-order mark
CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"), max_size=12)
PLAIN_CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff\t\r\n"), max_size=12)


def parse(path: Path, read: Callable[[], Any]) -> Any:
    """``read()``'s result, or None after checking that it raised a one-line DataError naming ``path``
    (or a file in the folder ``path``); either way within ``fuzz.SECONDS``."""
    return outcome(read, DataError, source=path)


def write(folder: str, name: str, data: bytes) -> Path:
    path = Path(folder) / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def encoded(text: str, encoding: str) -> tuple[bytes, bool]:
    """``text`` in ``encoding`` (Latin-1: characters beyond it as é), and whether the readers accept it
    (Latin-1 only when it is ASCII). Latin-1 bytes that happen to be valid UTF-8 (``Â\x80`` is C2 80,
    U+0080) are UTF-8 text to any reader: such examples are left out."""
    if encoding == "latin-1":
        data = "".join(c if ord(c) < 256 else "é" for c in text).encode("latin-1")
        if not text.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                assume(False)
        return data, text.isascii()
    return text.encode(encoding), True


@st.composite
def tables(draw: st.DrawFn, cell: st.SearchStrategy[str]) -> tuple[list[str], list[list[str]]]:
    """A header of distinct column names and rows of as many cells."""
    header = draw(st.lists(cell, min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(st.lists(cell, min_size=len(header), max_size=len(header)), max_size=5))
    return header, rows


def expected(header: list[str], rows: list[list[str]], quoted: bool = False) -> list[dict[str, str]] | None:
    """The rows as read back, or None when the file must be refused: no data rows, or a blank line (an
    unquoted empty cell alone on its line)."""
    if not rows or (not quoted and len(header) == 1 and "" in [header[0]] + [r[0] for r in rows]):
        return None
    return [dict(zip(header, row, strict=True)) for row in rows]


def csv_cell(text: str, quote: bool) -> str:
    """A CSV cell: quoted when asked or when it holds a comma, quote or line break (Python's csv writer
    leaves a \r unquoted under a \n line terminator, which no reader can tell from a line end)."""
    return '"' + text.replace('"', '""') + '"' if quote or any(c in text for c in ',"\r\n') else text


@given(tables(CELL), ENDINGS, ENCODINGS, st.booleans(), st.booleans())
def test_csv_files_read_back_the_rows_written(table, ending, encoding, quote, gz):
    header, rows = table
    text = "".join(",".join(csv_cell(c, quote) for c in line) + ending for line in [header, *rows])
    data, readable = encoded(text, encoding)
    want = expected(header, rows, quote) if readable else None
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "t.csv.gz" if gz else "t.csv", data)
        got = parse(path, lambda: [row for _, row in read_rows(path)])
    assert got == want


@given(tables(PLAIN_CELL), ENDINGS, ENCODINGS)
def test_tsv_files_read_back_the_rows_written(table, ending, encoding):
    header, rows = table
    text = "".join("\t".join(line) + ending for line in [header, *rows])
    data, readable = encoded(text, encoding)
    want = expected(header, rows) if readable else None
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "t.tsv", data)
        got = parse(path, lambda: [row for _, row in read_rows(path)])
    assert got == want


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    CELL,
    st.lists(st.integers(), max_size=3),
)


@given(st.lists(st.dictionaries(CELL, JSON_VALUES, max_size=4), max_size=5), ENDINGS, ENCODINGS, st.booleans())
def test_jsonl_files_read_back_the_records_written(records, ending, encoding, ascii_only):
    text = "".join(json.dumps(r, ensure_ascii=ascii_only) + ending for r in records)
    data, readable = encoded(text, encoding)
    want = [{k: cell_text(v) for k, v in r.items()} for r in records] if records and readable else None
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "t.jsonl", data)
        got = parse(path, lambda: [row for _, row in read_rows(path)])
    assert got == want


# token soups: quotes, delimiters, line breaks, NUL and byte-order marks among words and JSON pieces
SOUP = st.lists(
    st.sampled_from(
        [
            "a",
            "é",
            ",",
            "\t",
            '"',
            "'",
            "\n",
            "\r",
            "\r\n",
            " ",
            "{",
            "}",
            "[",
            "]",
            ":",
            "1",
            "\x00",
            "\ufeff",
            "\x85",
            "\u2028",
            '"a"',
            '{"a": 1}',
            "label",
            "text",
        ]
    ),
    max_size=40,
).map("".join)
NAMES = st.sampled_from(["t.csv", "t.tsv", "t.jsonl", "t.csv.gz", "t.jsonl.gz"])


@given(
    st.one_of(
        st.tuples(SOUP, ENCODINGS).map(lambda t: t[0].encode(t[1], errors="replace")),
        st.binary(max_size=80),
        st.tuples(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]), st.binary(max_size=40)).map(b"".join),
    ),
    NAMES,
    st.booleans(),
)
def test_any_content_gives_rows_or_one_line(data, name, corrupt):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, name, data)
        if corrupt and name.endswith(".gz"):
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        rows = parse(path, lambda: list(read_rows(path)))
        columns = parse(path, lambda: list(read_rows(path, fieldnames=["a", "b"]))) if "sv" in name else None
    for result in (rows, columns):
        assert result is None or all(
            isinstance(n, int) and all(isinstance(v, str) for v in r.values()) for n, r in result
        )


# ---- task YAML files ------------------------------------------------------------------------------
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(
        [
            "train.csv",
            "dev.tsv",
            "test.jsonl",
            "nope.csv",
            "data.txt",
            ".",
            "..",
            "/",
            "classification",
            "regression",
            "extractive_qa",
            "label",
            "text",
            "accuracy",
            "pearson",
            "f1",
        ]
    ),
    st.lists(
        st.sampled_from(["text", "label", "a", "b", "accuracy", "spearmanr", "exact_match", "bleu", 1, None]),
        max_size=3,
    ),
    st.dictionaries(
        st.sampled_from(["train", "dev", "test", "x"]),
        st.sampled_from(["train.csv", "dev.tsv", "test.jsonl", "nope.csv", "", 3]),
        max_size=3,
    ),
)
KEYS = st.sampled_from(
    [
        "name",
        "files",
        "hub",
        "config",
        "text_columns",
        "label_column",
        "type",
        "labels",
        "metrics",
        "doc_stride",
        "colour",
    ]
)
VALID = {"name": "t", "files": {"train": "train.csv", "dev": "dev.tsv"}, "text_columns": ["text"]}


@given(st.dictionaries(KEYS, VALUES, max_size=4), st.booleans(), SOUP)
def test_task_files_give_a_task_or_one_line(changes, start_valid, train):
    data = (VALID if start_valid else {}) | changes
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "train.csv").write_text("text,label\na,0\nb,1\n" if start_valid else train, encoding="utf-8")
        (Path(folder) / "dev.tsv").write_text("text\tlabel\na\t0\n", encoding="utf-8")
        path = write(folder, "task.yaml", yaml.safe_dump(data).encode())
        task = parse(Path(folder), lambda: load_task_file(path))  # the task file or its train file
    assert (
        task is None or isinstance(task, Task) and task.text_columns and (task.labels is None or len(task.labels) >= 2)
    )


# raw text: any characters, control characters included (the YAML reader's multi-line error about them,
# and the loader's ValueError for a date such as 2001-13-45, are made one line by arch.parse_yaml)
YAML_TEXT = st.text(max_size=120)


@given(st.one_of(YAML_TEXT, st.text(st.sampled_from(list("{}[]:,-\"' \n\t#&*!|>0123456789abelnst")), max_size=120)))
def test_raw_task_yaml_text_gives_a_task_or_one_line(text):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "task.yaml", text.encode())
        parse(path, lambda: load_task_file(path))
