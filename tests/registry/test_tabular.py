"""CSV checks name the line and the reason; column types and counts come from every value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.store.datasets import Column
from app.training.tabular import InvalidCsv, inspect_csv, load_columns, target_array


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The CSV file is empty: it needs a header line naming the columns, then one line "
              "per row."),
        (b"\n\n", "The CSV file is empty: it needs a header line naming the columns, then one "
                  "line per row."),
        (b"1.0,2,3\n4,5,6\n", "Line 1 has no header: its fields are all numbers ('1.0', '2', "
                              "'3'). Add a first line that names the columns."),
        (b"a,b,c\n1,2,3\n4,5\n", "Line 3 has 2 fields, but the header names 3 columns."),
        (b"a,b\n1,2\n3,4,5\n", "Line 3 has 3 fields, but the header names 2 columns."),
        (b"a,b\n1,2\n\xff\xfe,3\n", "Line 3 is not valid UTF-8 (byte 1 of the line). Save the "
                                    "file as UTF-8 and upload it again."),
        (b"a,b\n1,\"2\n3,4\n", "Line 3 is not valid CSV: unexpected end of data."),
        (b"a,b\n", "The CSV file has a header but no data rows."),
        (b"a,,c\n1,2,3\n", "Line 1 (the header) leaves column 2 without a name."),
        (b"a,b,a\n1,2,3\n", "Line 1 (the header) names column 'a' twice."),
    ],
    ids=["empty", "blank", "no-header", "short-row", "long-row", "encoding", "open-quote",
         "header-only", "unnamed", "duplicate"],
)
def test_malformed_csv_names_the_line(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(InvalidCsv) as info:
        inspect_csv(write(tmp_path, data))
    assert info.value.message == message
    assert info.value.status == 422 and info.value.code == "invalid_csv"


def test_columns_types_missing_and_distinct(tmp_path: Path) -> None:
    data = ("\ufeffid,score,label,note\r\n"  # a BOM and Windows line ends, as Excel writes
            "1,0.5,yes,\r\n"
            "2,1e3,no,hello\r\n"
            "\r\n"  # a blank line is skipped, not a row
            "3,-2,yes,NA\r\n").encode()
    summary = inspect_csv(write(tmp_path, data))
    assert summary.row_count == 3
    assert summary.columns == (
        Column("id", "integer", 0, 3),
        Column("score", "number", 0, 3),
        Column("label", "string", 0, 2),
        Column("note", "string", 2, 1),
    )


def test_distinct_count_is_capped(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i % 3}\n" for i in range(1500))
    summary = inspect_csv(write(tmp_path, ("x,y\n" + rows).encode()))
    assert summary.columns[0].distinct is None and summary.columns[1].distinct == 3


def test_load_columns_picks_features_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b,y,c\n1,2,cat,3\n4,5,dog,6\n")
    seen: list[int] = []
    X, y = load_columns(path, ["c", "a"], "y", 2, seen.append)
    assert X.tolist() == [[3.0, 1.0], [6.0, 4.0]] and y == ["cat", "dog"]
    labels = target_array(y, Column("y", "string", 0, 2), "classification")
    assert labels.tolist() == ["cat", "dog"]
    ints = target_array(["1", "0"], Column("y", "integer", 0, 2), "classification")
    assert ints.dtype == np.int64
    floats = target_array(["1", "0"], Column("y", "integer", 0, 2), "regression")
    assert floats.dtype == np.float64


def test_load_columns_notices_a_changed_file(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,y\n1,2\n3,4\n")
    with pytest.raises(InvalidCsv) as info:
        load_columns(path, ["a"], "y", 1)
    assert info.value.message == "The dataset has more rows than when it was uploaded."


def test_errors_past_the_first_block_name_their_line(tmp_path: Path) -> None:
    rows = b"".join(b"%d,%d\n" % (i, i) for i in range(120_000))  # more than one read block
    data = b"a,b\n" + rows + b"7,\xe9\n"
    with pytest.raises(InvalidCsv) as info:
        inspect_csv(write(tmp_path, data))
    assert info.value.message == ("Line 120002 is not valid UTF-8 (byte 3 of the line). Save "
                                  "the file as UTF-8 and upload it again.")
    data = b"a,b\n" + rows + b"1,2,3\n"
    with pytest.raises(InvalidCsv) as info:
        inspect_csv(write(tmp_path, data))
    assert info.value.message == "Line 120002 has 3 fields, but the header names 2 columns."


def test_a_line_without_end_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    with pytest.raises(InvalidCsv) as info:
        inspect_csv(write(tmp_path, b"a\n1\n" + b"9" * (3 << 20)))
    assert info.value.message == ("Line 3 is longer than 1048576 bytes; is this really a CSV "
                                  "file?")


def test_quoted_line_breaks_infinities_and_no_final_newline(tmp_path: Path) -> None:
    summary = inspect_csv(write(tmp_path, b'note,x,y\n"two\nlines",inf,1\nplain,2.5,3'))
    assert summary.row_count == 2
    assert summary.columns == (Column("note", "string", 0, 2), Column("x", "string", 0, 2),
                               Column("y", "integer", 0, 2))
