"""Upgrades: the data dir release 0.1 wrote (tests/fixtures/datadir-0.1, made by
tests/fixtures/make_datadir.py) is opened, migrated and served by this release with the same
predictions; a data dir from a newer release is refused with a clear message and left as it was.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from app.config import Paths
from app.store import Store
from app.store.db import SCHEMA_VERSION
from app.store.doctor import run_doctor
from app.store.reconcile import reconcile
from tests.fixtures.make_datadir import EXPECTED, served_predictions

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "datadir-0.1"


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    """A copy: the fixture stays exactly as 0.1 wrote it."""
    home = tmp_path / "home"
    shutil.copytree(FIXTURE / "home", home)
    return home


def test_a_0_1_data_dir_migrates_and_serves_the_same_predictions(old_home: Path) -> None:
    expected = json.loads((FIXTURE / EXPECTED).read_text())
    store = Store(Paths(old_home))
    try:
        conn = store.db.connection()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert not reconcile(store).changed()  # nothing orphaned, missing or half-written
        assert run_doctor(store, mark=False).healthy
        models = {m.name: m for m in store.list_models()[0]}
        assert set(models) == {"iris-skops", "iris-onnx", "iris-pickle", "iris-mlflow", "churn"}
        assert models["iris-skops"].aliases == {"production": 1, "candidate": 2}
        assert store.get_version("iris-pickle", 1).served_file[1] == "skops"
        assert store.get_version("iris-skops", 1).twin_status == "verified"
        churn = store.get_version("churn", "production")
        assert churn.dataset_id is not None and store.datasets.get(churn.dataset_id).row_count
        jobs, _ = store.jobs.list_jobs()
        assert {(j.kind, j.status) for j in jobs} == {("train", "succeeded"),
                                                      ("compile", "succeeded")}
    finally:
        store.close()
    assert served_predictions(old_home, expected["checks"]) == expected["predictions"]


def test_a_data_dir_from_a_newer_release_is_refused_untouched(
        old_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = old_home / "modeldepot.db"
    conn = sqlite3.connect(database)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = database.read_bytes()
    assert main(["doctor", "--home", str(old_home)]) == 1
    err = capsys.readouterr().err
    assert "written by a newer ModelDepot" in err and "Nothing was changed" in err
    assert database.read_bytes() == before
