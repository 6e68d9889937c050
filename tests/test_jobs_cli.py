"""`modeldepot datasets|train|jobs` against a real registry process, as a user types them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.cli.jobs import parse_param, progress_line
from tests.conftest import TOKEN
from tests.live import free_port, start_registry, stop
from tests.registry.jobdata import RF, classification_csv


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home, port = tmp_path / "home", free_port()
    proc = start_registry(home, port, MODELDEPOT_POOL_SIZE="1")
    for key, value in {"HOME": str(home), "TOKEN": TOKEN, "REGISTRY_PORT": str(port)}.items():
        monkeypatch.setenv(f"MODELDEPOT_{key}", value)
    yield home
    stop(proc)


def test_param_values_are_json_when_they_can_be() -> None:
    assert parse_param("n_estimators=200") == ("n_estimators", 200)
    assert parse_param("max_depth=null") == ("max_depth", None)
    assert parse_param("hidden_layer_sizes=[64, 32]") == ("hidden_layer_sizes", [64, 32])
    assert parse_param("criterion=gini") == ("criterion", "gini")
    assert progress_line({"progress": 0.5, "status": "running", "step": "fit"}) == (
        "[###############...............]  50%  running   fit")


@pytest.mark.slow
def test_push_train_wait_and_inspect(registry: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "churn.csv"
    csv.write_bytes(classification_csv(rows=120))
    assert main(["datasets", "push", str(csv)]) == 0
    pushed = capsys.readouterr().out
    match = re.fullmatch(r"dataset ([0-9a-f]{64}) \(120 rows; columns f0, f1, f2, f3, label\)\n",
                         pushed)
    assert match, pushed
    assert main(["datasets", "list"]) == 0
    assert match.group(1)[:12] in capsys.readouterr().out

    assert main(["train", "--dataset", str(csv), "--target", "label", "--estimator", RF,
                 "--param", "n_estimators=30", "--param", "max_depth=null", "--model", "churn",
                 "--alias", "production", "--wait"]) == 0
    out, err = capsys.readouterr()
    done = re.fullmatch(r"job ([0-9a-f]{32}) succeeded: churn version 1 \(accuracy=.*, f1=.*, "
                        r"roc_auc=.*\)\n", out)
    assert done, out
    bars = [line for line in err.splitlines() if line.startswith("[")]
    assert bars[0] == "[..............................]   0%  queued"
    assert bars[-1] == "[##############################] 100%  succeeded"
    assert len(bars) == len({b.split("%")[1] for b in bars})  # not a terminal: once per step
    job_id = done.group(1)

    assert main(["models", "show", "churn", "1", "--evaluation"]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[0].startswith("Evaluated on 30 held-out rows of dataset ")
    assert report[1] == "Confusion matrix (rows: true class, columns: predicted):"
    counts = [[int(c) for c in line.split()[1:3]] for line in report[3:5]]
    assert sum(map(sum, counts)) == 30 and [line.split()[0] for line in report[3:5]] == ["0", "1"]
    assert report[5].startswith("ROC AUC ") and report[6].startswith("PR AUC ")
    assert report[7] == "Top features (feature_importances_):" and len(report) == 12

    assert main(["jobs", "list", "--status", "succeeded"]) == 0
    listed = capsys.readouterr().out
    assert listed.split()[:3] == ["ID", "KIND", "STATUS"]
    assert re.search(rf"^{job_id} +train +succeeded +100%  churn +1$", listed, re.M), listed
    assert main(["jobs", "log", job_id]) == 0
    assert capsys.readouterr().out.rstrip().endswith("Job succeeded.")
    assert main(["jobs", "cancel", job_id]) == 1
    assert capsys.readouterr().err == (
        f"modeldepot: Job {job_id} has already succeeded; there is nothing to cancel.\n")

    assert main(["train", "--dataset", match.group(1), "--target", "label", "--estimator",
                 "os.system", "--model", "churn"]) == 1
    assert capsys.readouterr().err.startswith(
        "modeldepot: Estimator 'os.system' is not allowed.")
    assert main(["train", "--dataset", "missing.csv", "--target", "label", "--estimator", RF,
                 "--model", "churn"]) == 1
    assert capsys.readouterr().err == (
        "modeldepot: No file at missing.csv, and it is not a dataset id either.\n")
