"""POST /v1/models/{name}[/versions/{version}]/predict: every payload shape and every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.store import Store
from tests.inference.conftest import (
    IRIS_NAMES,
    ROW,
    AppClient,
    add_version,
    regressor,
    string_iris,
    wait_for,
)
from tests.models import iris_model, iris_rows

ROWS = iris_rows(5).tolist()


def v1_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    assert "Traceback" not in response.text and "/tmp" not in response.text
    return str(body["error"]["message"])


def expected(rows: list[list[float]]) -> list[int]:
    return iris_model().predict(np.array(rows)).tolist()


def test_instances_as_lists(client: AppClient) -> None:
    r = client.post("/v1/models/iris/predict", json={"instances": ROWS})
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "iris", "version": 1, "predictions": expected(ROWS)}
    assert r.headers["content-type"] == "application/json"


def test_instances_as_records_by_feature_name(client: AppClient) -> None:
    records = [dict(zip(reversed(IRIS_NAMES), reversed(row), strict=True)) for row in ROWS]
    r = client.post("/v1/models/named/predict", json={"instances": records})
    assert r.status_code == 200, r.text
    model = iris_model(C=0.5)
    assert r.json()["predictions"] == model.predict(np.array(ROWS)).tolist()


def test_dataframe_split_reorders_columns(client: AppClient) -> None:
    columns = list(reversed(IRIS_NAMES))
    data = [list(reversed(row)) for row in ROWS]
    r = client.post("/v1/models/named/predict",
                    json={"dataframe_split": {"columns": columns, "data": data, "index": [0] * 5}})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == iris_model(C=0.5).predict(np.array(ROWS)).tolist()


def test_dataframe_records(client: AppClient) -> None:
    records = [dict(zip(IRIS_NAMES, row, strict=True)) for row in ROWS]
    r = client.post("/v1/models/named/predict", json={"dataframe_records": records})
    assert r.json()["predictions"] == iris_model(C=0.5).predict(np.array(ROWS)).tolist()


def test_inputs_as_rows_and_as_columns(client: AppClient) -> None:
    r = client.post("/v1/models/iris/predict", json={"inputs": ROWS})
    assert r.json()["predictions"] == expected(ROWS)
    columns = {name: [row[i] for row in ROWS] for i, name in enumerate(IRIS_NAMES)}
    r = client.post("/v1/models/named/predict", json={"inputs": columns})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == iris_model(C=0.5).predict(np.array(ROWS)).tolist()


def test_proba(client: AppClient) -> None:
    r = client.post("/v1/models/iris/predict", json={"instances": ROWS, "proba": True})
    body = r.json()
    np.testing.assert_allclose(body["probabilities"], iris_model().predict_proba(np.array(ROWS)))
    assert body["predictions"] == expected(ROWS)


def test_versions_by_number_latest_and_alias(client: AppClient, iris_store: Store,
                                              tmp_path: Path) -> None:
    add_version(iris_store, "iris", iris_model(C=0.01), tmp_path, alias="candidate")
    for ref, version in (("1", 1), ("2", 2), ("latest", 2), ("candidate", 2), ("production", 1)):
        r = client.post(f"/v1/models/iris/versions/{ref}/predict", json={"instances": [ROW]})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == version, ref
    # Without a version: production (1), although 2 is newer.
    assert client.post("/v1/models/iris/predict", json={"instances": [ROW]}).json()["version"] == 1


def test_string_labels_and_regression(client: AppClient, iris_store: Store,
                                      tmp_path: Path) -> None:
    add_version(iris_store, "species", string_iris(), tmp_path)
    r = client.post("/v1/models/species/predict", json={"instances": [ROW]})
    assert r.json()["predictions"] == ["setosa"]
    model = regressor()
    add_version(iris_store, "reg", model, tmp_path)
    r = client.post("/v1/models/reg/predict", json={"instances": [[0.1, 0.2, 0.3]]})
    assert r.json()["predictions"] == pytest.approx(model.predict([[0.1, 0.2, 0.3]]).tolist())
    msg = v1_error(client.post("/v1/models/reg/predict",
                               json={"instances": [[0.1, 0.2, 0.3]], "proba": True}), 422)
    assert "probabilities" in msg


@pytest.mark.parametrize(("payload", "words"), [
    ({"instances": [[5.1, 3.5, 1.4]]}, "4 features"),
    ({"instances": [[5.1, 3.5, 1.4, 0.2, 9.9]]}, "got 5"),
    ({"instances": [[5.1, "x", 1.4, 0.2]]}, "Row 0, feature 1 of instances is 'x': not a number"),
    ({"instances": [[1, 2, 3, "abc"]]}, "Row 0, feature 3 of instances is 'abc': not a number"),
    ({"instances": [ROW, [1, 2, "3", 4]]}, "Row 1, feature 2 of instances is '3': not a number"),
    ({"instances": [[5.1, None, 1.4, 0.2]]}, "Row 0, feature 1 of instances is None"),
    ({"instances": [[True, False, True, True]]}, "true/false"),
    ({"instances": [[5.1, 3.5, 1.4, 0.2], [1.0]]}, "rectangular"),
    ({"instances": [5.1, 3.5, 1.4, 0.2]}, "wrap a single row"),
    ({"instances": []}, "no rows"),
    ({"instances": [[1, 2, 3, 4]], "dataframe_split": {"columns": [], "data": []}}, "exactly one"),
    ({}, "exactly one"),
    ({"instances": [ROW], "proba": "yes"}, "proba"),
    ({"dataframe_split": {"data": [ROW]}}, "columns and data"),
    ({"instances": [{"a": 1}]}, "no feature names"),
])
def test_validation_errors_name_the_problem(client: AppClient, payload: dict[str, Any],
                                            words: str) -> None:
    r = client.post("/v1/models/iris/predict", json=payload)
    assert words in v1_error(r, 422)


@pytest.mark.parametrize(("payload", "words"), [
    ({"instances": [{"sepal_length": 1, "sepal_width": 2, "petal_length": 3}]}, "lacks"),
    ({"instances": [dict(zip(IRIS_NAMES, ROW, strict=True)) | {"colour": 1}]}, "unknown feature"),
    ({"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [ROW]}}, "lacks"),
    ({"dataframe_split": {"columns": IRIS_NAMES[:3] + IRIS_NAMES[:1], "data": [ROW]}}, "twice"),
    ({"inputs": {"sepal_length": [1, 2], "sepal_width": [1]}}, "one length"),
])
def test_feature_name_errors(client: AppClient, payload: dict[str, Any], words: str) -> None:
    assert words in v1_error(client.post("/v1/models/named/predict", json=payload), 422)


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(client: AppClient, value: bytes) -> None:
    body = b'{"instances": [[5.1, 3.5, 1.4, ' + value + b']]}'
    r = client.post("/v1/models/iris/predict", content=body,
                    headers={"content-type": "application/json"})
    assert "NaN or Infinity" in v1_error(r, 400)
    assert r.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("value", [b"1e400", b"-1e999"])
def test_a_number_beyond_float64_is_422_naming_its_cell(client: AppClient, value: bytes) -> None:
    """Valid JSON that a float64 cannot hold: the input check names the cell, not 'bad JSON'."""
    body = b'{"instances": [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, ' + value + b', 0.2]]}'
    r = client.post("/v1/models/iris/predict", content=body,
                    headers={"content-type": "application/json"})
    message = v1_error(r, 422)
    assert message.startswith("Row 1, feature 2 of instances is not finite"), message


def test_unknown_field_is_422_with_its_own_code(client: AppClient) -> None:
    r = client.post("/v1/models/iris/predict", json={"instances": [ROW], "colour": "red"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unknown_field"


def test_too_many_rows(client: AppClient, settings: Any, iris_store: Store) -> None:
    from app.inference.app import create_app

    app = create_app(settings.replace(max_batch_rows=3), iris_store)
    with AppClient(app) as small:
        msg = v1_error(small.post("/v1/models/iris/predict", json={"instances": [ROW] * 4}), 422)
        assert "at most 3" in msg
        assert small.post("/v1/models/iris/predict", json={"instances": [ROW] * 3}).status_code \
            == 200


def test_body_too_large_is_413(settings: Any, iris_store: Store) -> None:
    from app.inference.app import create_app

    app = create_app(settings.replace(max_request_bytes=1000), iris_store)
    with AppClient(app) as small:
        r = small.post("/v1/models/iris/predict", json={"instances": [ROW] * 100})
        v1_error(r, 413)
        assert small.post("/v1/models/iris/predict", json={"instances": [ROW]}).status_code == 200


def test_malformed_json_wrong_type_and_unknown_model(client: AppClient) -> None:
    r = client.post("/v1/models/iris/predict", content=b"{nope",
                    headers={"content-type": "application/json"})
    assert "not valid JSON" in v1_error(r, 400)
    r = client.post("/v1/models/iris/predict", content=b"instances=1",
                    headers={"content-type": "text/plain"})
    v1_error(r, 415)
    v1_error(client.post("/v1/models/ghost/predict", json={"instances": [ROW]}), 404)
    v1_error(client.post("/v1/models/iris/versions/9/predict", json={"instances": [ROW]}), 404)
    v1_error(client.post("/v1/models/iris/versions/nope/predict", json={"instances": [ROW]}), 404)
    v1_error(client.post("/v1/models/bad%20name/predict", json={"instances": [ROW]}), 400)
    v1_error(client.post("/v1/models/iris/predict", json=[ROW]), 422)


def test_v1_listing_and_description(client: AppClient) -> None:
    client.post("/v1/models/iris/predict", json={"instances": [ROW]})

    def listing() -> dict[str, Any]:
        return {m["name"]: m for m in client.get("/v1/models").json()["models"]}

    # Production models load in the background after ready (app/inference/cache.py); the
    # listing shows the served version once the load is registered.
    wait_for(lambda: listing()["iris"]["served_version"] == 1)
    models = listing()
    assert models["iris"]["aliases"] == {"production": 1}
    assert set(models) == {"iris", "named"}
    described = client.get("/v1/models/named").json()
    assert described["signature"]["feature_names"] == IRIS_NAMES
    assert described["outputs"] == ["predict", "predict_proba"]


def test_a_name_asked_for_again_and_again_holds_no_request_in_memory(
        client: AppClient, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = client.app.state.cache
    body = {"instances": [ROW] * 2000}
    for _ in range(20):
        v1_error(client.post("/v1/models/ghost/predict", json=body), 404)
    remembered = cache._missing[("ghost", None)]
    assert remembered.__traceback__ is None  # no request's frames (nor body) kept alive
    monkeypatch.setattr("app.inference.cache.MAX_REMEMBERED_MISSES", 3)
    for i in range(10):  # names are the client's to make up: what is remembered stays bounded
        v1_error(client.post(f"/v1/models/ghost{i}/predict", json={"instances": [ROW]}), 404)
    assert len(cache._missing) <= 3


def test_an_unexpected_failure_is_a_json_500_with_nothing_internal(
        client: AppClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"trouble under {settings.home}")

    monkeypatch.setattr(client.app.state.cache, "lookup", broken)
    for path, body in (("/v1/models/iris/predict", {"instances": [ROW]}),
                       ("/v2/models/iris/infer", {"inputs": [
                           {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})):
        r = client.post(path, json=body)
        assert r.status_code == 500, (path, r.text)
        assert str(settings.home) not in r.text and "Traceback" not in r.text
        assert "RuntimeError" not in r.text and r.json()["error"]
