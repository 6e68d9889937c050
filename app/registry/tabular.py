"""CSV datasets: check an uploaded file line by line, describe its columns, load them for fitting.

The checks run on the upload, before the file is stored, so a malformed CSV is a 422 that names
the line a person should look at: no header, a row with the wrong number of fields, bytes that
are not UTF-8, an unclosed quote, or nothing at all. Line numbers are physical lines, as an
editor shows them. Both passes stream the file: memory does not grow with its size.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from app.errors import Unprocessable
from app.store.datasets import Column

if TYPE_CHECKING:
    import numpy as np

MAX_LINE_BYTES = 1 << 20
MAX_COLUMNS = 10_000
MAX_COLUMN_NAME = 256
MAX_DISTINCT = 1000  # distinct values counted per column; past this a column is "many-valued"
MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})
INTEGER = re.compile(r"[+-]?\d+")
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
PROGRESS_EVERY = 50_000  # rows between progress callbacks while loading


class InvalidCsv(Unprocessable):
    code = "invalid_csv"


@dataclass(frozen=True)
class CsvSummary:
    row_count: int
    columns: tuple[Column, ...]


def _lines(f: BinaryIO) -> Iterator[str]:
    """Decoded physical lines; the error names the first line that is not UTF-8."""
    number = 0
    while raw := f.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise InvalidCsv(f"Line {number} is longer than {MAX_LINE_BYTES} bytes; "
                             "is this really a CSV file?")
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCsv(
                f"Line {number} is not valid UTF-8 (byte {exc.start + 1} of the line). Save the "
                "file as UTF-8 and upload it again."
            ) from None


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
    if all(NUMBER.fullmatch(n) for n in names):
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


def _check_width(line: int, row: list[str], width: int) -> None:
    if len(row) != width:
        raise InvalidCsv(f"Line {line} has {len(row)} field{'s' * (len(row) != 1)}, but the "
                         f"header names {width} columns.")


class _ColumnStats:
    __slots__ = ("name", "type", "missing", "values")

    def __init__(self, name: str) -> None:
        self.name = name
        self.type = "integer"
        self.missing = 0
        self.values: set[str] | None = set()

    def add(self, raw: str) -> None:
        value = raw.strip()
        if value in MISSING:
            self.missing += 1
            return
        if self.type == "integer" and not INTEGER.fullmatch(value):
            self.type = "number" if NUMBER.fullmatch(value) else "string"
        elif self.type == "number" and not NUMBER.fullmatch(value):
            self.type = "string"
        if self.values is not None:
            self.values.add(value)
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
        for line, row in rows:
            _check_width(line, row, len(names))
            for stat, value in zip(stats, row, strict=True):
                stat.add(value)
            count += 1
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
        picks = [index[name] for name in features]
        target_at = index[target]
        for n, (line, row) in enumerate(rows):
            _check_width(line, row, len(names))
            if n >= row_count:
                raise InvalidCsv("The dataset has more rows than when it was uploaded.")
            try:
                X[n] = [float(row[i]) for i in picks]
            except ValueError as exc:
                raise InvalidCsv(f"Line {line} has a feature value that is not a number.") from exc
            y.append(row[target_at].strip())
            if on_rows is not None and (n + 1) % PROGRESS_EVERY == 0:
                on_rows(n + 1)
    if len(y) != row_count:
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
