"""The compile function: build, verify and record a twin, never touching the version itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from flask.testing import FlaskClient
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.kernel_ridge import KernelRidge

from app.config import Settings
from app.store import NewVersion, Store, VersionRecord
from app.training.twin_build import build_twin
from tests.conftest import TOKEN
from tests.models import write_skops

X, Y = make_classification(n_samples=200, n_features=5, random_state=0)
FOREST = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(X, Y)


def add(store: Store, tmp: Path, model: Any = FOREST, name: str = "forest",
        **fields: Any) -> VersionRecord:
    path = write_skops(tmp / f"{name}.skops", model)
    temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
    return store.add_version(name, temp, sha, size, NewVersion(format="skops", **fields))


def shown(client: FlaskClient, name: str = "forest") -> dict[str, Any]:
    response = client.get(f"/api/v1/models/{name}/versions/1")
    assert response.status_code == 200
    twin: dict[str, Any] = response.get_json()["twin"]
    return twin


def test_a_verified_twin_shows_in_the_versions_metadata(settings: Settings, client: FlaskClient,
                                                         tmp_path: Path) -> None:
    store: Store = client.application.extensions["modeldepot"].store
    before = add(store, tmp_path)
    assert shown(client) == {"status": "none", "sha256": None, "enabled": True, "report": {}}
    assert build_twin(str(settings.home), before.id) == {"status": "verified", "reason": ""}
    twin = shown(client)
    assert twin["status"] == "verified" and twin["sha256"] and twin["enabled"]
    report = twin["report"]
    assert report["rows_from"] == "signature" and report["threshold_rows"] > 0
    assert report["label_mismatches"] == 0 and report["max_proba_diff"] <= 1e-5
    after = store.get_version("forest", 1)
    assert (after.sha256, after.status, after.signature) == \
        (before.sha256, before.status, before.signature)
    listed = client.get("/api/v1/models/forest/versions").get_json()["versions"][0]
    assert listed["twin"]["status"] == "verified"


def test_a_trained_version_is_checked_on_its_training_rows(settings: Settings, store: Store,
                                                           tmp_path: Path) -> None:
    names = [f"f{i}" for i in range(5)]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    lines = [",".join(names + ["label"])] + \
        [",".join([*map(str, row), str(label)]) for row, label in zip(X, Y, strict=True)]
    dataset, _ = store.blobs.write_bytes(("\n".join(lines) + "\n").encode())
    signature = {"n_features": 5, "feature_names": names,
                 "outputs": ["predict", "predict_proba"], "classes": [0, 1],
                 "task": "classification"}
    record = add(store, tmp_path, model, dataset_id=dataset, signature=signature,
                 params={"target": "label"})
    assert build_twin(str(settings.home), record.id)["status"] == "verified"
    report = store.get_version("forest", 1).twin_report
    assert report["rows_from"] == "dataset" and report["dataset_id"] == dataset
    assert report["dataset_rows"] == 200


def test_a_model_the_converter_cannot_handle_is_recorded_and_still_served(
        settings: Settings, client: FlaskClient, tmp_path: Path) -> None:
    store: Store = client.application.extensions["modeldepot"].store
    record = add(store, tmp_path, KernelRidge().fit(X, Y.astype(float)))
    outcome = build_twin(str(settings.home), record.id)
    assert outcome["status"] == "unsupported" and "skl2onnx" in outcome["reason"]
    twin = shown(client)
    assert twin["status"] == "unsupported" and twin["sha256"] is None
    assert twin["report"]["reason"] == outcome["reason"]
    assert store.get_version("forest", 1).status == "ready"


def test_the_twin_switch_is_a_version_tag(client: FlaskClient, tmp_path: Path) -> None:
    store: Store = client.application.extensions["modeldepot"].store
    add(store, tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = client.patch("/api/v1/models/forest/versions/1", json={"tags": {"twin": "off"}},
                            headers=auth)
    assert response.status_code == 200 and response.get_json()["twin"]["enabled"] is False
    response = client.patch("/api/v1/models/forest/versions/1", json={"tags": {"twin": ""}},
                            headers=auth)
    assert response.get_json()["twin"]["enabled"] is True


def test_versions_that_need_no_twin_or_are_gone_are_left_alone(
        settings: Settings, store: Store, tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    graph = to_onnx(FOREST, X[:1].astype(np.float32)).SerializeToString()
    temp, sha, size = store.blobs.receive(iter([graph]))
    onnx = store.add_version("graph", temp, sha, size, NewVersion(format="onnx"))
    assert build_twin(str(settings.home), onnx.id)["status"] == "none"
    assert store.get_version("graph", 1).twin_status == "none"
    gone = add(store, tmp_path)
    store.delete_version("forest", 1)
    assert build_twin(str(settings.home), gone.id) == {"status": "none",
                                                       "reason": "The version was deleted."}


def test_a_model_file_that_changed_on_disk_gets_no_twin(settings: Settings, store: Store,
                                                        tmp_path: Path) -> None:
    record = add(store, tmp_path)
    path = store.blob_path(record)
    data = bytearray(path.read_bytes())
    data[50] ^= 0xFF
    path.write_bytes(bytes(data))
    outcome = build_twin(str(settings.home), record.id)
    assert outcome == {"status": "unsupported",
                       "reason": "The model file does not match its sha256."}
