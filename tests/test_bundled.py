"""Bundled non-Python files (app/bundled.py) found from the package, whatever the cwd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app import bundled


def test_icon_and_notices_are_found_from_source() -> None:
    assert bundled.asset(bundled.ICON).read_bytes().startswith(b"\x89PNG")
    text = bundled.third_party_notices()
    for name in ("scikit-learn", "numpy", "onnxruntime", "Flask", "uvicorn", "PyInstaller"):
        assert name in text


def test_a_missing_asset_names_where_it_was_looked_for() -> None:
    with pytest.raises(FileNotFoundError, match="nothing.txt is missing from .*assets"):
        bundled.asset("nothing.txt")


def test_notices_command_from_another_directory(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "app", "notices"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith("Third-party software in ModelDepot")
