"""Property-based fuzzing of inspection (tests/formats/fuzz_inspection.py) in its own process:
only 4xx errors, no marker, and a memory cap. A few seconds here; `-m slow` runs many more."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CAP_MB = 64  # traced peak of one inspection of a file of a few KB
RSS_CAP_MB = 1024  # the whole process, scikit-learn and skops imported


def _fuzz(examples: int, tmp_path: Path) -> dict[str, object]:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "tests.formats.fuzz_inspection", str(examples), str(CAP_MB),
         str(tmp_path)],
        cwd=root, capture_output=True, text=True, timeout=3600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["examples"] == examples
    assert isinstance(report["max_rss_mb"], float) and report["max_rss_mb"] < RSS_CAP_MB
    assert not (tmp_path / "marker").exists()
    return report


def test_mutated_uploads_give_only_4xx_errors_within_memory(tmp_path: Path) -> None:
    report = _fuzz(60, tmp_path)
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict) and len(outcomes) >= 2, outcomes  # not one constant answer


@pytest.mark.slow
def test_many_mutated_uploads(tmp_path: Path) -> None:
    _fuzz(2000, tmp_path)
