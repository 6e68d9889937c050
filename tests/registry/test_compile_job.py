"""Twins built in the background: a version that becomes ready queues a compile job on the pool.

The first test is the whole path over real processes: a registry, its spawned pool and an
inference server, driven over HTTP as a client would.
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
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.kernel_ridge import KernelRidge

from app.client import Client, ClientError
from app.config import Settings
from app.store import Store
from tests.conftest import TOKEN
from tests.live import free_port, start_inference, start_registry, stop
from tests.models import write_skops
from tests.registry.conftest import AUTH, registry_app, upload
from tests.registry.jobdata import FINAL, classification_csv, train_body, wait_until

X, Y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
FOREST = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(X, Y)
# Under 500 kB: Werkzeug's test client spools larger bodies to a temp file it never closes.
SMALL = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, Y)


def verified_twin(client: Client, model: str) -> Any:
    """The version's twin once verified, else None (also while the version does not exist)."""
    try:
        twin = client.request("GET", f"/api/v1/models/{model}/versions/1")["twin"]
    except ClientError:
        return None
    return twin if twin["status"] == "verified" else None


@pytest.mark.slow
def test_uploaded_and_trained_forests_get_verified_twins_that_inference_serves(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    registry = start_registry(home, port)
    try:
        client = Client(f"http://127.0.0.1:{port}", TOKEN)
        stored = client.upload("forest", write_skops(tmp_path / "forest.skops", FOREST), {})
        assert stored["twin"]["status"] in ("queued", "verified")  # the answer says it is coming
        twin = wait_until(lambda: verified_twin(client, "forest"), "the uploaded forest's twin")
        assert twin["sha256"] and twin["report"]["rows_from"] == "signature"
        assert twin["report"]["label_mismatches"] == 0
        assert client.request("GET", "/api/v1/models/forest/versions/1")["status"] == "ready"

        csv = tmp_path / "data.csv"
        csv.write_bytes(classification_csv())
        dataset = client.upload_dataset(csv)["id"]
        client.request("POST", "/api/v1/jobs", json_body=train_body(dataset, model="trained"))
        twin = wait_until(lambda: verified_twin(client, "trained"), "the trained forest's twin")
        assert twin["report"]["rows_from"] == "dataset"
        assert twin["report"]["dataset_id"] == dataset and twin["report"]["dataset_rows"] == 300

        jobs = client.request("GET", "/api/v1/jobs")["jobs"]
        compiles = [j for j in jobs if j["kind"] == "compile"]
        assert len(compiles) == 2 and {j["status"] for j in compiles} == {"succeeded"}
        assert {(j["model"], j["version"]) for j in compiles} == {("forest", 1), ("trained", 1)}
    finally:
        stop(registry)

    inference_port = free_port()
    inference = start_inference(home, inference_port)
    url = f"http://127.0.0.1:{inference_port}"
    try:
        served = Client(url, TOKEN)
        assert served.request("GET", "/v1/models/forest")["engine"] == "onnxruntime-twin"
        assert served.request("GET", "/v1/models/trained")["engine"] == "onnxruntime-twin"
        rows = np.random.default_rng(0).normal(size=(200, 6)).round(5)
        answer = served.request("POST", "/v1/models/forest/predict",
                                json_body={"instances": rows.tolist(), "proba": True})
        assert answer["predictions"] == FOREST.predict(rows).tolist()
        np.testing.assert_allclose(answer["probabilities"], FOREST.predict_proba(rows),
                                   atol=1e-5)
    finally:
        stop(inference)


@pytest.fixture(scope="module")
def pool_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    home = tmp_path_factory.mktemp("compile") / "home"
    with registry_app(Settings(home=home, token=TOKEN, pool_size=1)) as application:
        yield application


def shown(client: FlaskClient, model: str) -> dict[str, Any]:
    twin: dict[str, Any] = client.get(f"/api/v1/models/{model}/versions/1").get_json()["twin"]
    return twin


def test_a_model_the_converter_lacks_is_recorded_and_the_job_says_so(
        pool_app: Flask, tmp_path: Path) -> None:
    client = pool_app.test_client()
    ridge = KernelRidge().fit(X, Y.astype(float))
    response = upload(client, "ridge", write_skops(tmp_path / "ridge.skops", ridge))
    assert response.status_code == 201
    twin = wait_until(lambda: shown(client, "ridge")["status"] == "unsupported"
                      and shown(client, "ridge"), "the unsupported outcome")
    assert "skl2onnx cannot convert it" in twin["report"]["reason"]
    job = wait_until(lambda: next((j for j in client.get("/api/v1/jobs").get_json()["jobs"]
                                   if j["model"] == "ridge" and j["status"] in FINAL), None),
                     "the compile job to end")
    assert job["kind"] == "compile" and job["status"] == "succeeded"
    log = client.get(f"/api/v1/jobs/{job['id']}/log").get_json()
    assert any("Twin unsupported" in line["line"] for line in log["lines"])


def test_onnx_uploads_queue_no_compile_job(pool_app: Flask, tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    client = pool_app.test_client()
    graph = to_onnx(SMALL, X[:1].astype(np.float32)).SerializeToString()
    response = client.post("/api/v1/models/graph/versions",
                           data={"file": (io.BytesIO(graph), "forest.onnx")},
                           content_type="multipart/form-data", headers=AUTH)
    assert response.status_code == 201 and response.get_json()["twin"]["status"] == "none"
    jobs = client.get("/api/v1/jobs").get_json()["jobs"]
    assert not [j for j in jobs if j["model"] == "graph"]


def test_compile_jobs_cannot_be_asked_for_by_clients(pool_app: Flask) -> None:
    client = pool_app.test_client()
    response = client.post("/api/v1/jobs", json={"kind": "compile", "model": "forest"},
                           headers=AUTH)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"]


def test_with_twins_off_no_twin_is_built_but_the_load_cache_is(settings: Settings,
                                                                 tmp_path: Path) -> None:
    with registry_app(settings.replace(twins=False)) as application:
        client = application.test_client()
        response = upload(client, "forest", write_skops(tmp_path / "forest.skops", SMALL))
        assert response.status_code == 201 and response.get_json()["twin"]["status"] == "none"
        jobs = client.get("/api/v1/jobs").get_json()["jobs"]
        assert [j["kind"] for j in jobs] == ["compile"]
        job = wait_until(lambda: (j := client.get(f"/api/v1/jobs/{jobs[0]['id']}").get_json())
                         ["status"] in FINAL and j, "the load-cache job")
        assert job["status"] == "succeeded"
        assert client.get("/api/v1/models/forest/versions/1").get_json()["twin"]["status"] == \
            "none"
        store = Store(settings.paths, readonly=True)
        try:
            cache = store.get_version("forest", 1).load_cache_sha256
            assert cache is not None and store.blobs.verify(cache)
        finally:
            store.close()
