"""A trusted pickle upload is opened only in the sandbox, and served from its skops copy.

The registry runs in this test process; every pickle loader in this process is replaced by a
tripwire, so the upload can only succeed if the pickle was opened somewhere else.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.formats import pickle_format
from app.store import Store
from tests.models import write_joblib
from tests.registry.conftest import AUTH, assert_serves_iris, error_code, upload


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> None:
    def opened(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a pickle was opened in a serving process")

    monkeypatch.setattr(pickle_format, "load_pickle", opened)
    monkeypatch.setattr(pickle, "load", opened)
    monkeypatch.setattr(pickle, "loads", opened)


def test_trusted_pickle_upload_is_converted_in_the_sandbox(
    client: FlaskClient, settings: Settings, tripwire: None, tmp_path: Path
) -> None:
    path = write_joblib(tmp_path / "m.joblib")
    response = upload(client, "iris", path, {"trust": True})
    assert response.status_code == 201, response.get_json()
    version = response.get_json()
    assert (version["format"], version["format_detail"]) == ("pickle", "joblib")
    assert version["served"]["format"] == "skops"
    assert version["served"]["sha256"] != version["sha256"]
    assert "sklearn.linear_model._logistic.LogisticRegression" in version["imported_globals"]
    # The artifact is still the file the client sent, byte for byte.
    with client.get("/api/v1/models/iris/versions/1/artifact") as artifact:
        assert artifact.data == path.read_bytes()
    assert sorted(p.name for p in settings.paths.tmp.iterdir()) == []

    store = Store(settings.paths)
    try:
        assert_serves_iris(settings, store)
    finally:
        store.close()


def test_refused_pickle_leaves_nothing(
    client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    from tests.models import _Marker

    marker = tmp_path / "marker"
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_Marker(marker)))
    response = upload(client, "iris", path, {"trust": True})
    assert response.status_code == 422
    assert error_code(response) == "unsafe_model"
    assert not marker.exists()
    assert client.get("/api/v1/models/iris", headers=AUTH).status_code == 404
    assert sorted(p.name for p in settings.paths.tmp.iterdir()) == []
    assert [p for p in settings.paths.blobs.rglob("*") if p.is_file()] == []
