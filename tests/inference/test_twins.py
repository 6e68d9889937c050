"""Serving through verified ONNX twins: the answers of scikit-learn, switched on and off live."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier

from app.config import Settings
from app.formats.onnx_format import inspect_onnx
from app.inference.app import create_app
from app.store import NewVersion, Store
from app.training.twin_build import build_twin
from tests.inference.conftest import AppClient, add_version, flip_byte, wait_for

X, Y = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3,
                           random_state=0)
ROWS = np.vstack([X, np.random.default_rng(1).normal(0, 2, size=(600, 8))]).round(6).tolist()


def string_forest() -> RandomForestClassifier:
    """String labels through a twin (a linear model would be served from its arrays instead:
    tests/inference/test_linear_cache.py)."""
    data = load_iris()
    return RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(
        data.data, data.target_names[data.target])


def compiled(store: Store, settings: Settings, name: str, model: Any, tmp: Path) -> int:
    """Store a model, build its twin with the registry's own compile job, return the row id."""
    version = add_version(store, name, model, tmp)
    record = store.get_version(name, version)
    assert build_twin(str(settings.home), record.id)["status"] == "verified"
    return record.id


@pytest.fixture
def forest_store(store: Store, settings: Settings, tmp_path: Path) -> Store:
    forest = RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(X, Y)
    compiled(store, settings, "forest", forest, tmp_path)
    compiled(store, settings, "words", string_forest(), tmp_path)
    return store


@pytest.fixture
def both(settings: Settings, forest_store: Store) -> Iterator[tuple[AppClient, AppClient]]:
    """The same store served with twins (the default) and without."""
    fast = create_app(settings.replace(poll_interval_ms=20), forest_store)
    slow = create_app(settings.replace(poll_interval_ms=20, twins=False), forest_store)
    with AppClient(fast) as twin, AppClient(slow) as sklearn:
        yield twin, sklearn


def engine(client: AppClient, name: str) -> str:
    response = client.get(f"/v1/models/{name}")
    assert response.status_code == 200, response.text
    return str(response.json()["engine"])


def test_a_verified_twin_serves_and_answers_as_scikit_learn_on_many_rows(
        both: tuple[AppClient, AppClient]) -> None:
    twin, sklearn = both
    assert engine(twin, "forest") == "onnxruntime-twin"
    assert engine(sklearn, "forest") == "scikit-learn"
    body = {"instances": ROWS, "proba": True}
    a, b = (c.post("/v1/models/forest/predict", json=body).json() for c in (twin, sklearn))
    assert a["predictions"] == b["predictions"]
    assert all(type(p) is int for p in a["predictions"])
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5, rtol=0)
    for row in ROWS[:25]:  # single rows take the same path as a lone client's
        one = {"instances": [row], "proba": True}
        a, b = (c.post("/v1/models/forest/predict", json=one).json() for c in (twin, sklearn))
        assert a["predictions"] == b["predictions"]
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5, rtol=0)


def test_v2_outputs_have_the_same_names_datatypes_and_shapes(
        both: tuple[AppClient, AppClient]) -> None:
    twin, sklearn = both
    body = {"inputs": [{"name": "input", "shape": [50, 8], "datatype": "FP64",
                        "data": ROWS[:50]}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    a, b = (c.post("/v2/models/forest/infer", json=body).json() for c in (twin, sklearn))
    for got, expected in zip(a["outputs"], b["outputs"], strict=True):
        assert {k: got[k] for k in ("name", "datatype", "shape")} == \
            {k: expected[k] for k in ("name", "datatype", "shape")}
    assert a["outputs"][0]["data"] == b["outputs"][0]["data"]
    np.testing.assert_allclose(a["outputs"][1]["data"], b["outputs"][1]["data"], atol=1e-5)
    meta_a, meta_b = (c.get("/v2/models/forest").json() for c in (twin, sklearn))
    assert meta_a == meta_b


def test_string_labels_are_the_same_json(both: tuple[AppClient, AppClient]) -> None:
    twin, sklearn = both
    assert engine(twin, "words") == "onnxruntime-twin"
    rows = np.random.default_rng(3).uniform(0, 8, size=(300, 4)).tolist()
    body = {"instances": rows, "proba": True}
    a, b = (c.post("/v1/models/words/predict", json=body).json() for c in (twin, sklearn))
    assert a["predictions"] == b["predictions"] and {"setosa"} <= set(a["predictions"])
    np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-5)
    v2 = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP64", "data": rows[:2]}]}
    out_a, out_b = (c.post("/v2/models/words/infer", json=v2).json()["outputs"][0]
                    for c in (twin, sklearn))
    assert out_a == out_b and out_a["datatype"] == "BYTES"


def test_bad_input_gets_the_same_errors_through_a_twin(
        both: tuple[AppClient, AppClient]) -> None:
    twin, sklearn = both
    for body in ({"instances": [[1.0] * 7]}, {"instances": [[1.0] * 7 + ["x"]]},
                 {"instances": []}, {"rows": [[1.0] * 8]}):
        a, b = (c.post("/v1/models/forest/predict", json=body) for c in (twin, sklearn))
        assert a.status_code == b.status_code == 422
        assert a.json() == b.json() and a.json()["error"]["code"]


def test_the_tag_twin_off_switches_one_version_to_scikit_learn_live(
        settings: Settings, forest_store: Store) -> None:
    app = create_app(settings.replace(poll_interval_ms=20), forest_store)
    with AppClient(app) as client:
        body = {"instances": ROWS[:40], "proba": True}
        before = client.post("/v1/models/forest/predict", json=body).json()
        failures: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                status = client.post("/v1/models/forest/predict", json=body).status_code
                if status != 200:
                    failures.append(status)

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            forest_store.update_version("forest", 1, tags={"twin": "off"})
            wait_for(lambda: engine(client, "forest") == "scikit-learn")
            forest_store.update_version("forest", 1, tags={"twin": ""})
            wait_for(lambda: engine(client, "forest") == "onnxruntime-twin")
        finally:
            stop.set()
            worker.join(10)
        assert failures == []
        assert engine(client, "words") == "onnxruntime-twin"  # the switch is per version
        after = client.post("/v1/models/forest/predict", json=body).json()
        assert after["predictions"] == before["predictions"]


def test_a_twin_verified_while_serving_takes_over_without_a_reload_of_the_app(
        settings: Settings, store: Store, tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(X, Y)
    version = add_version(store, "late", forest, tmp_path, alias="production")
    app = create_app(settings.replace(poll_interval_ms=20), store)
    with AppClient(app) as client:
        assert engine(client, "late") == "scikit-learn"
        expected = client.post("/v1/models/late/predict", json={"instances": ROWS}).json()
        build_twin(str(settings.home), store.get_version("late", version).id)
        wait_for(lambda: engine(client, "late") == "onnxruntime-twin")
        got = client.post("/v1/models/late/predict", json={"instances": ROWS}).json()
        assert got == expected


def test_a_damaged_twin_is_passed_over_for_the_model_itself(
        settings: Settings, forest_store: Store) -> None:
    twin_sha = forest_store.get_version("forest", 1).twin_sha256
    assert twin_sha is not None
    flip_byte(forest_store.blobs.path(twin_sha), 200)
    app = create_app(settings.replace(poll_interval_ms=20), forest_store)
    with AppClient(app) as client:
        assert engine(client, "forest") == "scikit-learn"
        response = client.post("/v1/models/forest/predict", json={"instances": ROWS[:3]})
        assert response.status_code == 200 and len(response.json()["predictions"]) == 3


def test_onnx_uploads_are_served_by_onnxruntime_directly(
        settings: Settings, store: Store) -> None:
    from skl2onnx import to_onnx

    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, Y)
    graph = to_onnx(forest, X[:1].astype(np.float32), options={"zipmap": False})
    temp, sha, size = store.blobs.receive(iter([graph.SerializeToString()]))
    signature, _ = inspect_onnx(graph.SerializeToString())
    store.add_version("graph", temp, sha, size,
                      NewVersion(format="onnx", signature=signature.to_dict()))
    app = create_app(settings.replace(poll_interval_ms=20), store)
    with AppClient(app) as client:
        assert engine(client, "graph") == "onnxruntime"
        got = client.post("/v1/models/graph/predict", json={"instances": ROWS[:50]}).json()
        expected = forest.predict(np.asarray(ROWS[:50], dtype=np.float32))
        assert got["predictions"] == expected.tolist()


def test_concurrent_callers_of_a_twin_each_get_their_own_rows(
        both: tuple[AppClient, AppClient]) -> None:
    twin, _ = both
    forest = RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(X, Y)
    answers: dict[int, Any] = {}

    def ask(i: int) -> None:
        body = {"instances": ROWS[i * 3:i * 3 + 1 + i % 3], "proba": True}
        answers[i] = twin.post("/v1/models/forest/predict", json=body).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for i in range(48):
        rows = np.asarray(ROWS[i * 3:i * 3 + 1 + i % 3])
        assert answers[i]["predictions"] == forest.predict(rows).tolist()
        np.testing.assert_allclose(answers[i]["probabilities"], forest.predict_proba(rows),
                                   atol=1e-5)


def loaded_bytes(client: AppClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("modeldepot_inference_loaded_bytes "):
            return float(line.split()[1])
    raise AssertionError("no modeldepot_inference_loaded_bytes in /metrics")


def test_the_memory_budget_counts_what_was_loaded_the_twin_or_the_model(
        both: tuple[AppClient, AppClient], forest_store: Store) -> None:
    twin, sklearn = both
    record = forest_store.get_version("forest", 1)
    assert record.twin_sha256 is not None
    twin_size = forest_store.blobs.path(record.twin_sha256).stat().st_size
    assert twin_size != record.size
    for client in both:
        r = client.post("/v1/models/forest/predict", json={"instances": ROWS[:1]})
        assert r.status_code == 200, r.text
    assert engine(twin, "forest") == "onnxruntime-twin"
    # Each is charged the resident memory its load added, never less than its own file.
    assert loaded_bytes(twin) >= twin_size
    assert loaded_bytes(sklearn) >= record.size
