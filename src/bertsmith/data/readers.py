"""Reading task files (TSV, CSV, JSON lines; optionally .gz or .bz2) as rows of text with line numbers.

Every row comes back as ``(line, {column: text})`` where ``line`` is the 1-based line on which the row
starts, so that any later complaint about a value can name the file, the line and the column. The
readers themselves reject what they cannot parse: an empty file, a file without data rows, bytes that
are not UTF-8, NUL characters, blank rows, rows with the wrong number of fields, lines that are not JSON
objects. TSV is read without quoting (GLUE's MRPC and SST-2 have sentences with unbalanced double
quotes); CSV with standard double-quote quoting. Lines end in ``\n``, ``\r\n`` or a bare ``\r`` (old Mac
files). The text is UTF-8, with or without a byte-order mark (MRPC's header starts with one), or UTF-16
with its byte-order mark; other encodings (Latin-1, UTF-16 without a mark) are refused naming the line.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Callable

from ..errors import DataError

FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}
_OPENERS: dict[str, Callable[..., IO[bytes]]] = {".bz2": bz2.open, ".gz": gzip.open}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BARE_CR = re.compile(rb"(?<=\r)(?!\n)")  # the end of a line that ends in \r alone

Row = tuple[int, dict[str, str]]


def file_format(path: Path) -> str:
    """``tsv``, ``csv`` or ``jsonl`` from the file's extension (a .gz or .bz2 suffix is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _OPENERS:
        suffixes.pop()
    if not suffixes or suffixes[-1] not in FORMATS:
        raise DataError(f"{path}: unknown file format (expected one of {', '.join(FORMATS)})")
    return FORMATS[suffixes[-1]]


def read_rows(path: Path, *, fieldnames: Sequence[str] | None = None) -> Iterator[Row]:
    """The rows of a task file. ``fieldnames`` names the columns of a delimited file without header
    row (CoLA's train and dev files); otherwise the first line is the header. A file without rows
    is an error."""
    fmt = file_format(path)
    opener = _OPENERS.get(path.suffix.lower(), open)
    try:
        handle = opener(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        try:
            if not handle.peek(1):
                raise DataError(f"{path}: the file is empty")
            lines = _decoded_lines(handle, path)
            if fmt == "jsonl":
                rows = _json_rows(lines, path)
            else:
                rows = _delimited_rows(lines, path, "\t" if fmt == "tsv" else ",", fieldnames)
            found = False
            for row in rows:
                found = True
                yield row
        except (OSError, EOFError) as exc:  # a corrupt .gz or .bz2 file
            raise DataError(f"{path}: cannot read ({exc})") from None
        if not found:
            raise DataError(f"{path}: no data rows")


def cell_text(value: Any) -> str:
    """A cell as text: strings as they are, None as empty, numbers and anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _decoded_lines(handle: IO[bytes], path: Path) -> Iterator[str]:
    """The file's lines with their endings, decoded: UTF-16 after its byte-order mark, UTF-8 otherwise."""
    if handle.peek(2)[:2] in _UTF16_BOMS:
        lines: Iterator[str] = _utf16_lines(handle, path)
    else:
        lines = _utf8_lines(handle, path)
    for number, text in enumerate(lines, 1):
        if "\x00" in text:
            raise DataError(
                f"{path}, line {number}: a NUL character, so not UTF-8 text (UTF-16 without a byte-order "
                "mark?); save the file as UTF-8"
            )
        yield text


def _utf8_lines(handle: IO[bytes], path: Path) -> Iterator[str]:
    number = 0
    for chunk in handle:
        for raw in _BARE_CR.split(chunk):
            if not raw:
                continue
            number += 1
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}, line {number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at character "
                    f"{exc.start + 1}); save the file as UTF-8"
                ) from None


def _utf16_lines(handle: IO[bytes], path: Path) -> Iterator[str]:
    text = io.TextIOWrapper(handle, encoding="utf-16", newline="")  # newline="": splits at \n, \r\n and \r
    try:
        yield from text
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-16 text ({exc.reason}); save the file as UTF-8") from None


def _delimited_rows(
    lines: Iterator[str], path: Path, delimiter: str, fieldnames: Sequence[str] | None
) -> Iterator[Row]:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    header = list(fieldnames) if fieldnames is not None else None
    start = 1
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields:
                raise DataError(f"{path}, line {line}: empty row")
            if header is None:
                header = fields
                continue
            if len(fields) != len(header):
                raise DataError(
                    f"{path}, line {line}: {len(fields)} fields, expected {len(header)} ({', '.join(header)})"
                )
            yield line, dict(zip(header, fields, strict=True))
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: {exc}") from None


def _json_rows(lines: Iterator[str], path: Path) -> Iterator[Row]:
    for line, text in enumerate(lines, 1):
        if not text.strip():
            raise DataError(f"{path}, line {line}: empty line")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {line}: not valid JSON ({exc.msg} at character {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {line}: expected a JSON object, got {type(record).__name__}")
        yield line, {key: cell_text(value) for key, value in record.items()}
