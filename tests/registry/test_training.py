"""Real training over the API, in a real spawn process pool: results, metrics, cancel.

One app (pool of 2) serves the whole module, so workers spawn and import scikit-learn once.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.formats import load_predictor
from app.formats.signature import Signature
from tests.conftest import TOKEN
from tests.registry.conftest import AUTH, registry_app
from tests.registry.jobdata import (
    FINAL,
    SLOW_ROWS,
    classification_csv,
    regression_csv,
    slow_body,
    train_body,
    wait_until,
)


@pytest.fixture(scope="module")
def pool_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    home = tmp_path_factory.mktemp("training") / "home"
    with registry_app(Settings(home=home, token=TOKEN, pool_size=2)) as application:
        yield application


@pytest.fixture
def client(pool_app: Flask) -> FlaskClient:
    return pool_app.test_client()


def upload(client: FlaskClient, data: bytes) -> str:
    response = client.post("/api/v1/datasets", data={"file": (io.BytesIO(data), "d.csv")},
                           content_type="multipart/form-data", headers=AUTH)
    assert response.status_code in (200, 201)
    return str(response.get_json()["id"])


def run_job(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job_id}"
    return finished(client, job_id)


def job(client: FlaskClient, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").get_json()
    return body


def finished(client: FlaskClient, job_id: str, timeout: float = 90) -> dict[str, Any]:
    return wait_until(lambda: (j := job(client, job_id))["status"] in FINAL and j,
                      f"job {job_id} to finish", timeout)


def predictions(pool_app: Flask, version: dict[str, Any], rows: np.ndarray) -> list[Any]:
    store = pool_app.extensions["modeldepot"].store
    path = store.blobs.path(version["sha256"])
    predictor = load_predictor(Path(path), "skops",
                               signature=Signature.from_dict(version["signature"]))
    return list(predictor.predict(rows))


def test_pool_is_flask_executor_with_spawn(client: FlaskClient, pool_app: Flask) -> None:
    run_job(client, train_body(upload(client, classification_csv(rows=60))))
    executor = pool_app.extensions["jobsexecutor"]
    assert pool_app.config["JOBS_EXECUTOR_TYPE"] == "process"
    assert executor._self._mp_context.get_start_method() == "spawn"
    assert executor._self._max_workers == 2


def test_classifier_trains_to_a_ready_version(client: FlaskClient, pool_app: Flask) -> None:
    dataset = upload(client, classification_csv(rows=300))
    done = run_job(client, train_body(dataset, params={"n_estimators": 40}, alias="production"))
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and done["attempts"] == 1 and done["error"] is None
    assert set(done["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert done["metrics"]["accuracy"] > 0.8  # the features really predict the label

    version = client.get(f"/api/v1/models/churn/versions/{done['version']}").get_json()
    assert version["status"] == "ready" and version["format"] == "skops"
    assert version["source"] == f"job:{done['id']}" and version["dataset_id"] == dataset
    assert version["metrics"] == done["metrics"] and version["params"]["n_estimators"] == 40
    assert version["params"]["warm_start"] is False  # chunked fitting leaves the client's value
    assert version["signature"]["feature_names"] == ["f0", "f1", "f2", "f3"]
    assert version["signature"]["classes"] == [0, 1] and version["aliases"] == ["production"]
    evaluation = version["evaluation"]  # on the 25% held out of 300 rows
    assert evaluation["rows"] == 75 and np.sum(evaluation["confusion"]["counts"]) == 75
    assert evaluation["roc"]["auc"] == pytest.approx(done["metrics"]["roc_auc"], abs=1e-6)
    assert [f["name"] for f in evaluation["features"]][:2] == ["f0", "f1"]  # the label's causes

    log = client.get(f"/api/v1/jobs/{done['id']}/log").get_json()
    lines = [entry["line"] for entry in log["lines"]]
    assert lines[0] == "Queued train job." and "Fitted 4 of 40." in lines
    assert "Fitted 40 of 40." in lines and lines[-1] == "Job succeeded."
    newer = client.get(f"/api/v1/jobs/{done['id']}/log?after={log['next_after'] - 1}").get_json()
    assert [entry["line"] for entry in newer["lines"]] == ["Job succeeded."]

    X = np.array([[3.0, 3.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 0.0]])
    assert predictions(pool_app, version, X) == [1, 0]

    listed = client.get("/api/v1/jobs?status=succeeded").get_json()["jobs"]
    assert done["id"] in [j["id"] for j in listed]
    again = client.delete(f"/api/v1/jobs/{done['id']}", headers=AUTH)
    assert again.status_code == 409 and again.get_json()["error"] == {
        "code": "job_finished",
        "message": f"Job {done['id']} has already succeeded; there is nothing to cancel.",
    }


def test_regressor_and_multiclass_metrics(client: FlaskClient, pool_app: Flask) -> None:
    regression = upload(client, regression_csv())
    done = run_job(client, train_body(
        regression, model="prices", target="price",
        estimator="sklearn.ensemble.HistGradientBoostingRegressor", params={"max_iter": 30}))
    assert done["status"] == "succeeded", done
    assert set(done["metrics"]) == {"r2", "mae"} and done["metrics"]["r2"] > 0.5

    colours = upload(client, classification_csv(rows=240, labels=("red", "green", "blue")))
    done = run_job(client, train_body(colours, model="colours",
                                      estimator="sklearn.linear_model.LogisticRegression",
                                      params={"max_iter": 500}))
    assert done["status"] == "succeeded", done
    assert set(done["metrics"]) == {"accuracy", "f1"}  # ROC AUC only where binary
    version = client.get(f"/api/v1/models/colours/versions/{done['version']}").get_json()
    assert sorted(version["signature"]["classes"]) == ["blue", "green", "red"]
    X = np.array([[3.0, 3.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 0.0]])
    assert predictions(pool_app, version, X) == ["blue", "red"]


def test_cancel_queued_and_running_jobs(client: FlaskClient) -> None:
    dataset = upload(client, classification_csv(rows=SLOW_ROWS, features=6, seed=3))
    ids = [client.post("/api/v1/jobs", json=slow_body(dataset), headers=AUTH).get_json()["id"]
           for _ in range(3)]
    running = wait_until(
        lambda: (js := [job(client, i) for i in ids]) and
        sum(j["status"] == "running" and j["step"] == "fit" for j in js) == 2 and js,
        "two jobs fitting")
    queued = next(j["id"] for j in running if j["status"] == "queued")

    response = client.delete(f"/api/v1/jobs/{queued}", headers=AUTH)
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    for job_id in (i for i in ids if i != queued):
        response = client.delete(f"/api/v1/jobs/{job_id}", headers=AUTH)
        assert response.status_code == 202
        assert response.get_json()["status"] == "running"
        assert response.get_json()["cancel_requested"] is True

    for job_id in ids:
        assert finished(client, job_id, timeout=30)["status"] == "cancelled"
    never_ran = job(client, queued)
    assert never_ran["started_at"] is None and never_ran["attempts"] == 0
    stopped = job(client, ids[0] if ids[0] != queued else ids[1])
    assert 0.15 <= stopped["progress"] < 0.85 and stopped["version"] is None
    response = client.get("/api/v1/models/slow")
    assert response.status_code == 404  # no version was created, so not even the model


def test_cancel_ends_a_fit_that_never_reaches_its_next_step(client: FlaskClient,
                                                           pool_app: Flask) -> None:
    """One long fit cannot stop between chunks; past the grace period its worker is ended."""
    pool_app.extensions["modeldepot"].runner.cancel_grace = 0.5
    dataset = upload(client, classification_csv(rows=SLOW_ROWS, features=6, seed=3))
    endless = train_body(dataset, model="endless", estimator="sklearn.neural_network.MLPClassifier",
                         params={"max_iter": 100_000, "tol": 0.0, "n_iter_no_change": 100_000})
    job_id = client.post("/api/v1/jobs", json=endless, headers=AUTH).get_json()["id"]
    wait_until(lambda: job(client, job_id)["step"] == "fit", "the fit to start")
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=AUTH).status_code == 202
    done = finished(client, job_id, timeout=30)
    assert done["status"] == "cancelled" and done["version"] is None
    lines = [e["line"] for e in client.get(f"/api/v1/jobs/{job_id}/log").get_json()["lines"]]
    assert ("The job did not reach its next step within 0.5 s of the cancel; its worker process "
            "was ended.") in lines
    assert lines[-1] == "Cancelled; its worker process ended."
    after = run_job(client, train_body(upload(client, classification_csv(rows=60)),
                                       model="after-cancel"))
    assert after["status"] == "succeeded"  # the pool was rebuilt
