"""Uploading a version from the browser: the API's path and the API's messages, every bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.registry.app import create_app
from app.store import Store
from tests.conftest import TOKEN
from tests.dashboard.conftest import alerts, csrf_of, login, notices, upload
from tests.models import write_hostile_pickle, write_joblib, write_skops


def test_upload_stores_a_version_through_the_api_path(client: FlaskClient, store: Store,
                                                     tmp_path: Path) -> None:
    csrf = login(client)
    r = upload(client, csrf, "iris", write_skops(tmp_path / "m.skops"), description="first")
    assert r.status_code == 303 and r.location == "/models/iris#v1"
    assert notices(client.get("/models/iris").text) == ["Stored version 1 of iris (skops)."]
    record = store.get_version("iris", 1)
    assert record.status == "ready" and record.description == "first" and record.signature
    assert client.get("/api/v1/models/iris/versions/1").get_json()["sha256"] == record.sha256


def test_upload_errors_are_the_apis_messages(client: FlaskClient, tmp_path: Path) -> None:
    csrf = login(client)
    garbage = b"definitely not a model"
    r = upload(client, csrf, "m", garbage, filename="notes.txt")
    api = client.post("/api/v1/models/m/versions", content_type="multipart/form-data",
                      data={"file": (io.BytesIO(garbage), "notes.txt")},
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == api.status_code == 422
    assert alerts(r.text) == [f"That did not work. {api.get_json()['error']['message']}"]
    assert 'value="m"' in r.text  # what was typed stays in the form


@pytest.mark.parametrize("model,content,fields,status,message", [
    ("", b"x", {}, 400, "Invalid model name ''"),
    ("a/b", b"x", {}, 400, "Invalid model name"),
    ("m", b"", {}, 422, "The file is empty."),
    ("m", b"x", {"description": "d" * 10_001}, 400, "A description must be"),
])
def test_bad_uploads(client: FlaskClient, model: str, content: bytes, fields: dict[str, str],
                     status: int, message: str) -> None:
    csrf = login(client)
    r = upload(client, csrf, model, content, **fields)
    assert r.status_code == status
    assert message in alerts(r.text)[0]


def test_upload_without_a_file_or_with_a_strange_body(client: FlaskClient) -> None:
    csrf = login(client)
    r = client.post(f"/upload?csrf={csrf}", content_type="multipart/form-data",
                    data={"model": "m"})
    assert r.status_code == 422 and "has no 'file' part" in alerts(r.text)[0]
    r = client.post(f"/upload?csrf={csrf}", data={"model": "m"})  # urlencoded
    assert r.status_code == 415 and "multipart/form-data" in alerts(r.text)[0]
    r = client.post(f"/upload?csrf={csrf}", content_type="multipart/form-data",
                    data={"model": "m", "colour": "red", "file": (io.BytesIO(b"x"), "f")})
    assert r.status_code == 422 and "Unexpected form part 'colour'" in alerts(r.text)[0]


def test_upload_past_the_size_limit(settings: Settings, store: Store) -> None:
    client = create_app(settings.replace(max_upload_bytes=1000), store).test_client()
    csrf = login(client)
    r = upload(client, csrf, "m", b"x" * 5000)
    assert r.status_code == 413 and "larger than the limit of 1000 bytes" in alerts(r.text)[0]
    assert list(store.paths.tmp.iterdir()) == []  # nothing left behind


def test_upload_csrf_is_checked_before_the_body_is_read(client: FlaskClient) -> None:
    login(client)
    r = client.post("/upload", content_type="multipart/form-data",
                    data={"model": "m", "file": (io.BytesIO(b"x"), "f"), "csrf": "in-the-body"})
    assert r.status_code == 403


def test_a_pickle_needs_trust_and_the_token(settings: Settings, store: Store,
                                            tmp_path: Path) -> None:
    client = create_app(settings.replace(auth="none"), store).test_client()
    csrf = csrf_of(client, "/login")
    path = write_joblib(tmp_path / "m.joblib")
    r = upload(client, csrf, "p", path, filename="m.joblib")
    assert r.status_code == 422 and "trust" in alerts(r.text)[0]
    assert 'class="warning-box highlight"' in r.text
    r = upload(client, csrf, "p", path, filename="m.joblib", trust="on")
    assert r.status_code == 401  # auth=none lets writes through, but not trusting a pickle
    assert "trust=true needs the API token" in alerts(r.text)[0]
    csrf = login(client)
    r = upload(client, csrf, "p", path, filename="m.joblib", trust="on")
    assert r.status_code == 303
    assert store.get_version("p", 1).format == "pickle"


def test_a_hostile_pickle_is_refused_even_when_trusted(client: FlaskClient, tmp_path: Path) -> None:
    csrf = login(client)
    marker = tmp_path / "ran"
    path = write_hostile_pickle(tmp_path / "evil.pkl", marker)
    r = upload(client, csrf, "evil", path, filename="evil.pkl", trust="on")
    assert r.status_code == 422 and "refuses it even for trusted uploads" in alerts(r.text)[0]
    assert not marker.exists()


