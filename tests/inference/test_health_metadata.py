"""Server and model health and metadata (/v2), metrics, and the offline docs pages."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings
from app.inference.app import create_app
from app.inference.metrics import InferenceMetrics
from app.store import Store
from tests.inference.conftest import ROW, AppClient, add_version, wait_for
from tests.models import iris_model


def test_server_metadata_live_and_ready(client: AppClient) -> None:
    meta = client.get("/v2").json()
    assert meta["name"] == "modeldepot" and "binary_tensor_data" in meta["extensions"]
    r = client.get("/v2/health/live")
    assert (r.status_code, r.json()) == (200, {"live": True})
    r = client.get("/v2/health/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True})


def test_model_metadata_from_the_signature(client: AppClient) -> None:
    for path in ("/v2/models/iris", "/v2/models/iris/versions/1",
                 "/v2/models/iris/versions/production", "/v2/models/iris/versions/latest"):
        meta = client.get(path).json()
        assert meta == {
            "name": "iris", "versions": ["1"], "platform": "sklearn_skops",
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}],
        }, path


def test_model_ready_routes(client: AppClient) -> None:
    r = client.get("/v2/models/iris/ready")
    assert (r.status_code, r.json()) == (200, {"name": "iris", "ready": True})
    assert client.get("/v2/models/iris/versions/1/ready").status_code == 200
    r = client.get("/v2/models/ghost/ready")
    assert r.status_code == 404 and set(r.json()) == {"error"}
    assert client.get("/v2/models/iris/versions/7").status_code == 404


def test_unknown_routes_and_methods_are_json(client: AppClient) -> None:
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and isinstance(r.json()["error"], str)
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/v1/models/iris/predict")
    assert r.status_code in (404, 405) and "error" in r.json()


def test_production_is_preloaded_without_a_request(client: AppClient) -> None:
    # After ready, in the background (issue 18: a start with many models must not wait for
    # every load); no prediction asks for it here.
    wait_for(lambda: "modeldepot_inference_loaded_models 1.0" in client.get("/metrics").text)
    text = client.get("/metrics").text
    assert 'modeldepot_inference_load_seconds_count{model="iris"} 1.0' in text


def test_metrics_count_requests_errors_and_latency(client: AppClient) -> None:
    for _ in range(3):
        client.post("/v1/models/iris/predict", json={"instances": [ROW]})
    client.post("/v2/models/iris/infer", json={"inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})
    client.post("/v1/models/iris/predict", json={"instances": [[1]]})
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'modeldepot_inference_requests_total{model="iris",protocol="v1",version="1"} 3.0' in text
    assert 'modeldepot_inference_requests_total{model="iris",protocol="v2",version="1"} 1.0' in text
    assert 'modeldepot_inference_errors_total{protocol="v1",status="422"} 1.0' in text
    assert 'modeldepot_inference_request_seconds_count{model="iris",version="1"} 4.0' in text
    assert 'modeldepot_inference_batch_requests_count{model="iris",version="1"} 4.0' in text


def test_docs_pages_use_no_external_url(client: AppClient) -> None:
    for page in ("/docs", "/redoc"):
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "http://" not in r.text and "https://" not in r.text, page
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets
        for asset in assets:
            assert asset.startswith("/static/"), asset
            assert client.get(asset).status_code == 200, asset
    init = client.get("/static/swagger-init.js").text
    assert "http://" not in init and "https://" not in init


def test_openapi_documents_every_route(client: AppClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/models/{name}/predict", "/v1/models/{name}/versions/{version}/predict",
                 "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer",
                 "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}",
                 "/v2/models/{name}/ready", "/metrics"):
        assert path in paths, path
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "V2Tensor" in schema and "V1PredictRequest" in schema


def test_no_database_yet_then_the_registry_creates_it(settings: Settings, tmp_path: Path) -> None:
    assert not settings.paths.database.exists()
    app = create_app(settings.replace(poll_interval_ms=20))
    with AppClient(app) as c:
        assert c.get("/v2/health/ready").status_code == 200
        r = c.post("/v1/models/iris/predict", json={"instances": [ROW]})
        assert r.status_code == 404
        store = Store(settings.paths)
        try:
            add_version(store, "iris", iris_model(), tmp_path, alias="production")
            wait_for(lambda: c.post("/v1/models/iris/predict",
                                    json={"instances": [ROW]}).status_code == 200)
        finally:
            store.close()


def test_lru_eviction_under_the_memory_budget(settings: Settings, iris_store: Store,
                                              tmp_path: Path) -> None:
    for _ in range(3):
        add_version(iris_store, "many", iris_model(), tmp_path)
    # A 0 MB budget keeps only the version that loaded last.
    app = create_app(settings.replace(cache_memory_mb=0), iris_store)
    with AppClient(app) as c:
        for version in ("1", "2", "3", "1"):
            r = c.post(f"/v1/models/many/versions/{version}/predict", json={"instances": [ROW]})
            assert r.status_code == 200
        text = c.get("/metrics").text
        assert "modeldepot_inference_loaded_models 1.0" in text
        # Version 1 was evicted by 2 and loaded again on demand: two loads of 'many' v1.
        assert 'modeldepot_inference_load_seconds_count{model="many"} 4.0' in text


def test_requests_right_after_ready_wait_for_models_still_loading(
        settings: Settings, store: Store, tmp_path: Path) -> None:
    """Ready comes before the production models are loaded; a request for one that is still
    loading (or not started yet) joins or starts its load and gets its answer."""
    names = [f"m{n}" for n in range(6)]
    for n, name in enumerate(names):
        add_version(store, name, iris_model(C=0.1 * (n + 1)), tmp_path, alias="production")
    with AppClient(create_app(settings, store)) as c:
        assert c.get("/v2/health/ready").status_code == 200
        answers = [c.post(f"/v1/models/{name}/predict", json={"instances": [ROW]})
                   for name in reversed(names)]
        assert [(r.status_code, r.json()["version"]) for r in answers] == [(200, 1)] * 6
        wait_for(lambda: "modeldepot_inference_loaded_models 6.0" in c.get("/metrics").text)
        assert 'load_seconds_count{model="m0"} 1.0' in c.get("/metrics").text  # loaded once


def test_metrics_histograms_are_cumulative_with_bounds_inclusive() -> None:
    # The per-version series are plain counts turned into families at scrape time
    # (app/inference/metrics.py): a value on a bound counts in that bucket (le), as in
    # prometheus_client, and the series of a version loaded again continue.
    metrics = InferenceMetrics()
    first = metrics.bind("m", 2)
    first.observe("v2", 0.001)
    first.observe("v2", 0.0007)
    metrics.bind("m", 2).observe("v1", 7.0)
    text = metrics.render().decode()
    for le, count in (("0.0005", 0), ("0.001", 2), ("2.5", 2), ("+Inf", 3)):
        assert f'modeldepot_inference_request_seconds_bucket{{le="{le}",model="m",version="2"}} ' \
               f'{count}.0' in text
    assert 'modeldepot_inference_request_seconds_sum{model="m",version="2"} 7.0017' in text
    assert 'modeldepot_inference_requests_total{model="m",protocol="v1",version="2"} 1.0' in text
    assert 'modeldepot_inference_requests_total{model="m",protocol="v2",version="2"} 2.0' in text
