"""A registry app over a real temporary data dir, driven through Flask's test client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.registry.app import create_app
from tests.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def registry_app(settings: Settings) -> Iterator[Flask]:
    """A registry app over `settings`; afterwards the pool workers a test started end and the
    store closes."""
    application = create_app(settings)
    try:
        yield application
    finally:
        reg = application.extensions["modeldepot"]
        reg.runner.shutdown()
        reg.store.close()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    with registry_app(settings) as application:
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def upload(
    client: FlaskClient,
    model: str,
    path: Path,
    metadata: dict[str, Any] | None = None,
    *,
    filename: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    data: dict[str, Any] = {"file": (path.open("rb"), filename or path.name)}
    if metadata is not None:
        data["metadata"] = json.dumps(metadata)
    return client.post(
        f"/api/v1/models/{model}/versions",
        data=data,
        content_type="multipart/form-data",
        headers=AUTH if headers is None else headers,
    )


def error_code(response: Any) -> str:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return str(body["error"]["code"])


def assert_serves_iris(settings: Settings, store: Any) -> None:
    """A fresh inference server over `store` predicts like tests.models.iris_model."""
    import numpy as np

    from app.inference.app import create_app as create_inference
    from tests.inference.conftest import AppClient
    from tests.models import iris_model, iris_rows

    with AppClient(create_inference(settings, store)) as inference:
        answer = inference.post("/v1/models/iris/predict",
                                json={"instances": iris_rows().tolist()})
        assert answer.status_code == 200, answer.text
        np.testing.assert_array_equal(answer.json()["predictions"],
                                      iris_model().predict(iris_rows()))
