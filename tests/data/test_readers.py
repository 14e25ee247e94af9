"""The task file readers on line endings and encodings: what they read, and the one line naming the
file and the problem for what they refuse."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import pytest

from bertsmith.data.readers import read_rows
from bertsmith.errors import DataError

ROWS = [(2, {"text": 'a "quoted", text', "label": "0"}), (3, {"text": "b", "label": "1"})]
CSV = 'text,label\n"a ""quoted"", text",0\nb,1\n'


def rows(tmp_path: Path, name: str, content: bytes) -> list:
    path = tmp_path / name
    path.write_bytes(content)
    return list(read_rows(path))


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom"])
def test_line_endings_and_encodings_are_read(tmp_path: Path, ending: str, encoding: str):
    text = CSV.replace("\n", ending)
    if encoding.endswith("-bom"):
        data = ("\ufeff" + text).encode(encoding.removesuffix("-bom"))
    else:
        data = text.encode(encoding)
    assert rows(tmp_path, "t.csv", data) == ROWS


def test_bare_cr_files_keep_line_numbers_and_quoted_line_breaks(tmp_path: Path):
    assert rows(tmp_path, "t.csv", b'text,label\r"two\rlines",0\rb,1\r') == [
        (2, {"text": "two\rlines", "label": "0"}),
        (4, {"text": "b", "label": "1"}),
    ]
    assert rows(tmp_path, "t.tsv", b"text\tlabel\ra\t0\rb\t1") == [
        (2, {"text": "a", "label": "0"}),
        (3, {"text": "b", "label": "1"}),
    ]
    assert rows(tmp_path, "t.jsonl", b'{"text": "a"}\r{"text": "b"}\r') == [(1, {"text": "a"}), (2, {"text": "b"})]
    with pytest.raises(DataError, match=r"t.tsv, line 3: 1 fields, expected 2"):
        rows(tmp_path, "t.tsv", b"text\tlabel\ra\t0\rb\r")


def test_compressed_files_are_read_and_corrupt_ones_refused(tmp_path: Path):
    assert rows(tmp_path, "t.csv.gz", gzip.compress(CSV.replace("\n", "\r").encode())) == ROWS
    assert rows(tmp_path, "t.csv.bz2", bz2.compress(CSV.encode("utf-16"))) == ROWS
    with pytest.raises(DataError, match=r"t.csv.gz: cannot read \(Not a gzipped file"):
        rows(tmp_path, "t.csv.gz", b"text,label\n")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("t.csv", b"", r"t.csv: the file is empty$"),
        ("t.jsonl", b"", r"t.jsonl: the file is empty$"),
        ("t.csv.gz", gzip.compress(b""), r"t.csv.gz: the file is empty$"),
        ("t.tsv", b"text\tlabel\n", r"t.tsv: no data rows$"),
        (
            "t.csv",
            "text,label\ncafé,0\n".encode("latin-1"),
            r"t.csv, line 2: not UTF-8 text \(byte 0xe9 at character 4\); save the file as UTF-8$",
        ),
        (
            "t.csv",
            "text,label\na,0\n".encode("utf-16-le"),
            r"t.csv, line 1: a NUL character, so not UTF-8 text \(UTF-16 "
            r"without a byte-order mark\?\); save the file as UTF-8$",
        ),
        ("t.csv", b"\xff\xfet\x00,\x00l", r"t.csv: not valid UTF-16 text \(truncated data\); save the file as UTF-8$"),
    ],
)
def test_unreadable_files_are_one_line_errors_naming_the_file(tmp_path: Path, name: str, content: bytes, message: str):
    with pytest.raises(DataError, match=message) as info:
        rows(tmp_path, name, content)
    assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value)
