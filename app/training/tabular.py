"""CSV datasets: check an uploaded file line by line, describe its columns, load them for fitting.

The checks run on the upload, before the file is stored, so a malformed CSV is a 422 that names
the line a person should look at: no header, a row with the wrong number of fields, bytes that
are not UTF-8, an unclosed quote, or nothing at all. Line numbers are physical lines, as an
editor shows them. Both passes stream the file in blocks: memory does not grow with its size.

Speed: the file is decoded a block at a time, and columns are described a batch of rows at a
time, by set operations on each batch's distinct values and numpy's float parser over them
all, so Python does little work per cell (tens of MB/s rather than a few).

Every step is linear in its input: no regular expression runs over the file's text, since a
backtracking one (as the number pattern "digits, optional point, digits" was) takes time
quadratic in a long field, and a header
field may be a megabyte long (tests/registry/test_tabular_linear.py).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from app.errors import Unprocessable
from app.store.datasets import Column

if TYPE_CHECKING:
    import numpy as np

MAX_LINE_BYTES = 1 << 20
READ_BLOCK = 1 << 20
BATCH_ROWS = 4096
MAX_COLUMNS = 10_000
MAX_COLUMN_NAME = 256
MAX_DISTINCT = 1000  # distinct values counted per column; past this a column is "many-valued"
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
FRACTION_MARKS = ".eE"  # what a number that is not an integer is written with


class InvalidCsv(Unprocessable):
    code = "invalid_csv"


@dataclass(frozen=True)
class CsvSummary:
    row_count: int
    columns: tuple[Column, ...]


def _lines(f: BinaryIO) -> Iterator[str]:
    """Decoded physical lines (with their newline); errors name the line they are on."""
    done = 0  # lines yielded so far
    carry = b""
    block = f.read(READ_BLOCK)
    if block.startswith(codecs.BOM_UTF8):
        block = block[len(codecs.BOM_UTF8):]
    while block:
        data = carry + block
        cut = data.rfind(b"\n") + 1
        yield from _decoded(data[:cut], done)
        done += data.count(b"\n", 0, cut)
        carry = data[cut:]
        if len(carry) > MAX_LINE_BYTES:
            raise InvalidCsv(f"Line {done + 1} is longer than {MAX_LINE_BYTES} bytes; is this "
                             "really a CSV file?")
        block = f.read(READ_BLOCK)
    if carry:
        yield from _decoded(carry, done)


def _decoded(data: bytes, done: int) -> Iterator[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = done + data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise InvalidCsv(f"Line {number} is not valid UTF-8 (byte {column} of the line). Save "
                         "the file as UTF-8 and upload it again.") from None
    lines = text.split("\n")
    last = lines.pop()  # "" after a final newline, else the file's unterminated last line
    for line in lines:
        yield line + "\n"
    if last:
        yield last


def _rows(f: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank record; csv errors name their line."""
    reader = csv.reader(_lines(f), strict=True)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidCsv(f"Line {reader.line_num} is not valid CSV: {exc}.") from None
        if row:
            yield reader.line_num, row


def _header(rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    first = next(rows, None)
    if first is None:
        raise InvalidCsv("The CSV file is empty: it needs a header line naming the columns, "
                         "then one line per row.")
    line, names = first
    names = [n.strip() for n in names]
    if len(names) > MAX_COLUMNS:
        raise InvalidCsv(f"Line {line} names {len(names)} columns; at most {MAX_COLUMNS} are "
                         "accepted.")
    if all(is_number(n) for n in names):
        shown = ", ".join(repr(n) for n in names[:4])
        raise InvalidCsv(f"Line {line} has no header: its fields are all numbers ({shown}). "
                         "Add a first line that names the columns.")
    seen: set[str] = set()
    for index, name in enumerate(names, start=1):
        if not name:
            raise InvalidCsv(f"Line {line} (the header) leaves column {index} without a name.")
        if len(name) > MAX_COLUMN_NAME or not name.isprintable():
            raise InvalidCsv(f"Line {line} (the header) has an unusable name for column {index}: "
                             f"names are printable and at most {MAX_COLUMN_NAME} characters.")
        if name in seen:
            raise InvalidCsv(f"Line {line} (the header) names column {name[:60]!r} twice.")
        seen.add(name)
    return names


def is_number(text: str) -> bool:
    """Whether `text` is a decimal number: an optional sign, digits with at most one point
    (some digit on either side of it), an optional exponent. One pass of str methods, so
    linear in the length of the text."""
    body = text[1:] if text[:1] in ("+", "-") else text
    mantissa, mark, exponent = _split_exponent(body)
    if mark and not _is_digits(exponent[1:] if exponent[:1] in ("+", "-") else exponent):
        return False
    whole, point, fraction = mantissa.partition(".")
    if not point:
        return _is_digits(whole)
    return (whole == "" or _is_digits(whole)) and (fraction == "" or _is_digits(fraction)) \
        and (whole + fraction) != ""


def _split_exponent(text: str) -> tuple[str, str, str]:
    cut = min((i for i in (text.find("e"), text.find("E")) if i >= 0), default=-1)
    return (text, "", "") if cut < 0 else (text[:cut], text[cut], text[cut + 1:])


def _is_digits(text: str) -> bool:
    """Non-empty and all decimal digits (any script's, as a regular expression's digit class)."""
    return text.isdecimal()


def _batches(rows: Iterator[tuple[int, list[str]]], width: int) -> Iterator[list[list[str]]]:
    """Batches of data rows, each row checked to have the header's width."""
    while batch := list(islice(rows, BATCH_ROWS)):
        for line, row in batch:
            if len(row) != width:
                raise InvalidCsv(f"Line {line} has {len(row)} field{'s' * (len(row) != 1)}, but "
                                 f"the header names {width} columns.")
        yield [row for _, row in batch]


def _kind(values: set[str]) -> str:
    """"integer", "number" or "string": what every one of these values is.

    Parsed by numpy (Python's own float syntax, at C speed); infinities count as text, since no
    estimator fits on them.
    """
    import numpy as np

    try:
        numbers = np.array(list(values), dtype=np.float64)
    except ValueError:
        return "string"
    if not np.isfinite(numbers).all():
        return "string"
    written = "".join(values)
    return "number" if any(mark in written for mark in FRACTION_MARKS) else "integer"


class _ColumnStats:
    """A column's type, missing count and distinct values, updated a batch at a time."""

    __slots__ = ("name", "type", "missing", "values")

    def __init__(self, name: str) -> None:
        self.name = name
        self.type = "integer"
        self.missing = 0
        self.values: set[str] | None = set()

    def add(self, column: tuple[str, ...]) -> None:
        present = set(column)
        for value in present & MISSING:
            self.missing += column.count(value)
        present -= MISSING
        if not present:
            return
        if self.type != "string":
            kind = _kind(present)
            if kind == "string" or self.type == "integer":
                self.type = kind
        if self.values is not None:
            self.values.update(v.strip() for v in present)
            if len(self.values) > MAX_DISTINCT:
                self.values = None

    def column(self, rows: int) -> Column:
        kind = "string" if self.missing == rows else self.type  # all empty: nothing to infer
        return Column(self.name, kind, self.missing,
                      len(self.values) if self.values is not None else None)


def inspect_csv(path: Path) -> CsvSummary:
    """Check the whole file and describe its columns; InvalidCsv naming the line otherwise."""
    with path.open("rb") as f:
        rows = _rows(f)
        names = _header(rows)
        stats = [_ColumnStats(n) for n in names]
        count = 0
        for batch in _batches(rows, len(names)):
            for stat, column in zip(stats, zip(*batch, strict=True), strict=True):
                stat.add(column)
            count += len(batch)
    if count == 0:
        raise InvalidCsv("The CSV file has a header but no data rows.")
    return CsvSummary(count, tuple(s.column(count) for s in stats))


def load_columns(
    path: Path, features: list[str], target: str, row_count: int,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The feature columns as one float64 matrix, and the target column's raw strings.

    The file was checked on upload (inspect_csv) and the columns at submit time (numeric,
    nothing missing), so a failure here means the data dir changed under us.
    """
    import numpy as np

    X = np.empty((row_count, len(features)), dtype=np.float64)
    y: list[str] = []
    with path.open("rb") as f:
        rows = _rows(f)
        names = _header(rows)
        index = {n: i for i, n in enumerate(names)}
        pick = itemgetter(*[index[name] for name in features])
        pick_target = itemgetter(index[target])
        done = 0
        for batch in _batches(rows, len(names)):
            if done + len(batch) > row_count:
                raise InvalidCsv("The dataset has more rows than when it was uploaded.")
            values = [pick(row) for row in batch]
            try:
                block = np.array(values, dtype=np.float64)
            except ValueError as exc:
                raise InvalidCsv("A feature value is not a number.") from exc
            X[done:done + len(batch)] = block.reshape(len(batch), len(features))
            y.extend(pick_target(row).strip() for row in batch)
            done += len(batch)
            if on_rows is not None:
                on_rows(done)
    if done != row_count:
        raise InvalidCsv("The dataset has fewer rows than when it was uploaded.")
    return X, y


def target_array(values: list[str], column: Column, task: str) -> Any:
    """Target strings as the labels a scikit-learn estimator expects for its task."""
    import numpy as np

    if task == "regression" or column.type == "number":
        return np.asarray(values, dtype=np.float64)
    if column.type == "integer":
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=str)
