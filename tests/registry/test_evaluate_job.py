"""The "evaluate" job: an uploaded version gets an evaluation report on a stored dataset, in a
real spawn pool, and the dashboard draws it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn import metrics
from sklearn.datasets import load_iris

from app.config import Settings
from app.formats.signature import signature_from_estimator
from app.store import NewVersion
from tests.conftest import TOKEN
from tests.models import iris_model, write_skops
from tests.registry.conftest import AUTH, registry_app
from tests.registry.jobdata import wait_until
from tests.registry.test_training import finished

NAMES = ["sl", "sw", "pl", "pw"]


@pytest.fixture(scope="module")
def pool_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    home = tmp_path_factory.mktemp("evaluate") / "home"
    with registry_app(Settings(home=home, token=TOKEN, pool_size=1)) as application:
        yield application


def iris_csv() -> bytes:
    X, y = load_iris(return_X_y=True)
    lines = [",".join([*NAMES, "species"])]
    lines += [",".join(f"{v:.1f}" for v in row) + f",{k}" for row, k in zip(X, y, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def test_an_uploaded_version_is_evaluated_on_a_dataset(pool_app: Flask, tmp_path: Path) -> None:
    client: FlaskClient = pool_app.test_client()
    store = pool_app.extensions["modeldepot"].store
    model = iris_model()
    path = write_skops(tmp_path / "iris.skops", model)
    temp, sha, size = store.blobs.receive(iter([path.read_bytes()]))
    signature = {**signature_from_estimator(model).to_dict(), "feature_names": NAMES}
    store.add_version("iris", temp, sha, size, NewVersion(format="skops", signature=signature))
    r = client.post("/api/v1/datasets", data={"file": (io.BytesIO(iris_csv()), "iris.csv")},
                    content_type="multipart/form-data", headers=AUTH)
    dataset = r.get_json()["id"]

    wrong = client.post("/api/v1/jobs", headers=AUTH, json={
        "kind": "evaluate", "model": "iris", "version": 1, "dataset": dataset, "target": "nope"})
    assert wrong.status_code == 422 and "no column 'nope'" in wrong.get_json()["error"]["message"]

    r = client.post("/api/v1/jobs", headers=AUTH, json={
        "kind": "evaluate", "model": "iris", "version": 1, "dataset": dataset,
        "target": "species"})
    assert r.status_code == 202, r.get_json()
    done = finished(client, r.get_json()["id"])
    assert done["status"] == "succeeded", done

    X, y = load_iris(return_X_y=True)
    X = np.round(X, 1)  # as the CSV carries them
    expected = metrics.confusion_matrix(y, model.predict(X))
    version = client.get("/api/v1/models/iris/versions/1").get_json()
    assert version["evaluation"]["confusion"]["counts"] == expected.tolist()
    assert done["metrics"]["accuracy"] == pytest.approx(metrics.accuracy_score(y, model.predict(X)))
    assert version["evaluation"]["rows"] == 150

    page = wait_until(lambda: (p := client.get("/models/iris/versions/1")).status_code == 200
                      and p.text, "the version page")
    cells = re.findall(r'class="cell" data-true="(\d)" data-predicted="(\d)" data-count="(\d+)"',
                       page)
    assert len(cells) == 9
    for true, predicted, count in cells:
        assert int(count) == expected[int(true), int(predicted)]
