"""CSV parsing is linear on any input: no regular expression runs over the file's text, the
number test agrees with the pattern it replaced, random and adversarial files end in a summary
or a 422, and megabyte-long pathological fields finish under a CPU-time limit (counted by the
kernel, not timed by the test)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.training import tabular
from app.training.tabular import InvalidCsv, inspect_csv, is_number

# The pattern the header check used before: \d+\.?\d* backtracks quadratically on a long run
# of digits that does not match. Here it only judges short strings, as the reference.
OLD_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

NUMBERISH = st.text(alphabet="0123456789+-.eE x١٢٣²", max_size=12)


@given(NUMBERISH)
@settings(max_examples=3000, deadline=None)
def test_is_number_agrees_with_the_pattern_it_replaced(text: str) -> None:
    assert is_number(text) == bool(OLD_NUMBER.fullmatch(text)), text


def test_is_number_on_known_cases() -> None:
    for text in ("1", "-1", "+1.5", "1.", ".5", "1e5", "1.5E-3", "٣"):
        assert is_number(text), text
    for text in ("", ".", "+", "1e", "e5", "1.2.3", "1e5e3", "+-1", "1 ", "inf", "0x10", "²"):
        assert not is_number(text), text


def test_the_parser_module_uses_no_regular_expressions() -> None:
    assert not hasattr(tabular, "re")
    assert "re.compile" not in Path(tabular.__file__).read_text()


FIELD = st.one_of(
    st.text(max_size=30),
    NUMBERISH,
    st.sampled_from(["", "NA", "nan", "inf", "\"", "\"a\"\"b\"", "1" * 300 + "x", "\x00"]),
)


@given(header=st.lists(FIELD, min_size=1, max_size=6),
       rows=st.lists(st.lists(FIELD, min_size=0, max_size=7), max_size=6),
       raw=st.binary(max_size=40))
@settings(max_examples=300, deadline=None,  # no timing: a slow first example is no failure
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_files_end_in_a_summary_or_a_422(
    tmp_path: Path, header: list[str], rows: list[list[str]], raw: bytes
) -> None:
    lines = [",".join(header)] + [",".join(row) for row in rows]
    path = tmp_path / "fuzz.csv"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw)
    try:
        summary = inspect_csv(path)
    except InvalidCsv as exc:
        assert exc.status == 422 and exc.message
    else:
        names = [column.name for column in summary.columns]
        assert summary.row_count >= 1 and names and all(names)
        assert len(set(names)) == len(names)


PATHOLOGICAL = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_CPU, (20, 20))
    from app.training.tabular import InvalidCsv, inspect_csv
    for name in sys.argv[1:]:
        try:
            inspect_csv(Path(name))
            print("accepted")
        except InvalidCsv as exc:
            print("refused:", exc.message.split(":")[0])
""")


def test_megabyte_fields_built_to_backtrack_finish_under_a_cpu_limit(tmp_path: Path) -> None:
    """With the old pattern the header alone would take hours of CPU; the kernel ends the
    process (SIGXCPU) after 20 s, so passing means the parse did not go quadratic."""
    digits = "1" * 60_000  # fields under csv.field_size_limit (128 KiB); the old pattern: ~90 s
    files = {
        "header.csv": f"{digits}x,{digits}.{digits}e\n1,2\n",
        "numeric-header.csv": f"{digits}e+{digits}y\n1\n",
        "cell.csv": f"a,b\n{digits}x,{digits}.{digits}e\n1,2\n",
    }
    paths = []
    for name, text in files.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    done = subprocess.run([sys.executable, "-c", PATHOLOGICAL, *map(str, paths)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.splitlines() == [
        "refused: Line 1 (the header) has an unusable name for column 1",
        "refused: Line 1 (the header) has an unusable name for column 1",
        "accepted",
    ]
