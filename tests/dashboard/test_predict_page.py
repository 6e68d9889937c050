"""Predictions through a real inference server, and the status page."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.inference.app import create_app as create_inference
from app.registry.app import create_app
from app.store import Store
from tests.dashboard.conftest import alerts, csrf_of, login
from tests.inference.conftest import LiveServer
from tests.live import free_port


@pytest.fixture
def inference(settings: Settings, named: Store) -> Iterator[LiveServer]:
    store = named
    with LiveServer(create_inference(settings.replace(poll_interval_ms=20), store)) as server:
        yield server


def predict_client(settings: Settings, store: Store, port: int, **changes: object) -> FlaskClient:
    return create_app(settings.replace(inference_port=port, **changes), store).test_client()


def test_predict_form_is_built_from_the_signature(settings: Settings, store: Store,
                                                  inference: LiveServer) -> None:
    client = predict_client(settings, store, inference.port)
    page = client.get("/predict?model=named").text
    for i, name in enumerate(["sepal_length", "sepal_width", "petal_length", "petal_width"]):
        assert f'<label for="f_{i}">{name}</label>' in page
    assert "Show class probabilities" in page
    assert "Choose a model" in client.get("/predict").text


def test_predict_through_the_inference_server(settings: Settings, store: Store,
                                              inference: LiveServer) -> None:
    client = predict_client(settings, store, inference.port)
    csrf = csrf_of(client, "/predict?model=named")  # under auth=writes no login is needed
    row = {"f_0": "5.1", "f_1": "3.5", "f_2": "1.4", "f_3": "0.2"}
    r = client.post("/predict?model=named", data={"csrf": csrf, "mode": "fields", "proba": "on",
                                                  **row})
    assert r.status_code == 200, alerts(r.text)
    assert "Result from v1" in r.text and '<td class="prediction">0</td>' in r.text
    assert "P(2)" in r.text
    body = json.dumps({"instances": [[6.7, 3.0, 5.2, 2.3]]})
    r = client.post("/predict?model=named&version=1",
                    data={"csrf": csrf, "mode": "json", "raw": body})
    assert r.status_code == 200 and '<td class="prediction">2</td>' in r.text


@pytest.mark.parametrize("data,status,message", [
    ({"mode": "fields", "f_0": "1", "f_1": "2", "f_2": "3", "f_3": "abc"}, 422, "not a number"),
    ({"mode": "json", "raw": "{not json"}, 400, "JSON"),
    ({"mode": "json", "raw": '{"instances": [[1, 2]]}'}, 422, "4"),
    ({"mode": "json", "raw": ""}, 400, "Please fill in the JSON request."),
])
def test_predict_errors_are_the_inference_servers(settings: Settings, store: Store,
                                                  inference: LiveServer, data: dict[str, str],
                                                  status: int, message: str) -> None:
    client = predict_client(settings, store, inference.port)
    csrf = csrf_of(client, "/predict?model=named")
    r = client.post("/predict?model=named", data={"csrf": csrf, **data})
    assert r.status_code == status
    assert message in alerts(r.text)[0]


def test_predict_under_auth_all_forwards_the_login(settings: Settings, named: Store) -> None:
    store = named
    locked = settings.replace(auth="all", poll_interval_ms=20)
    with LiveServer(create_inference(locked, store)) as server:
        client = predict_client(locked, store, server.port)
        csrf = login(client)
        raw = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]})
        r = client.post("/predict?model=named", data={"csrf": csrf, "mode": "json", "raw": raw})
        assert r.status_code == 200, alerts(r.text)
        client.post("/logout", data={"csrf": csrf})
        # Forged from a logged-out browser: the registry forwards no token, inference refuses.
        csrf = csrf_of(client, "/login")
        r = client.post("/predict?model=named", data={"csrf": csrf, "mode": "json", "raw": raw})
        assert r.status_code == 401 and "needs the API token" in alerts(r.text)[0]


def test_predict_with_the_inference_server_down(settings: Settings, iris: Store) -> None:
    store = iris
    client = predict_client(settings, store, free_port())
    csrf = csrf_of(client, "/predict?model=iris")
    r = client.post("/predict?model=iris", data={"csrf": csrf, "mode": "json", "raw": "{}"})
    assert r.status_code == 503 and "is not answering on port" in alerts(r.text)[0]
    page = client.get("/status").text
    assert "not answering" in page and "is not answering on port" in page


@pytest.mark.parametrize("query,status,message", [
    ("model=nope", 404, "No model named 'nope'."),
    ("model=a%20b", 400, "Invalid model name"),
    ("model=iris&version=..%2F", 400, ""),
    ("model=iris&version=7", 404, "has no version 7"),
])
def test_predict_page_for_bad_choices(client: FlaskClient, iris: Store, query: str, status: int,
                                      message: str) -> None:
    r = client.get(f"/predict?{query}")
    assert r.status_code == status
    assert message in alerts(r.text)[0]


def test_predict_post_without_a_model(client: FlaskClient) -> None:
    csrf = csrf_of(client, "/login")
    r = client.post("/predict", data={"csrf": csrf, "mode": "json", "raw": "{}"})
    assert r.status_code == 400 and alerts(r.text) == ["That did not work. Choose a model first."]


def test_status_page_with_inference_up(settings: Settings, store: Store,
                                       inference: LiveServer) -> None:
    client = predict_client(settings, store, inference.port)
    page = client.get("/status", headers={"Host": "localhost:8720"}).text
    assert 'badge-ready">ready' in page
    assert f'href="http://localhost:{inference.port}/docs"' in page
    assert str(settings.home) in page
