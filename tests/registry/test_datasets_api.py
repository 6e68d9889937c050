"""Dataset routes over a real app and data dir: upload, dedup, list, show, delete, refusals."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.errors import Unprocessable
from app.registry.app import create_app
from app.registry.uploads import ReceivedUpload
from tests.registry.conftest import AUTH, error_code

CSV = b"a,b,label\n1.5,2,yes\n2.5,3,no\n3.5,4,yes\n4.5,5,no\n"
CAP = 4096


@pytest.fixture
def small_cap_app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings.replace(max_dataset_bytes=CAP))
    yield application
    application.extensions["modeldepot"].store.close()


def post_csv(client: FlaskClient, data: bytes, filename: str = "data.csv",
             headers: dict[str, str] | None = None, **fields: str) -> Any:
    form: dict[str, Any] = {"file": (io.BytesIO(data), filename), **fields}
    return client.post("/api/v1/datasets", data=form, content_type="multipart/form-data",
                       headers=AUTH if headers is None else headers)


def message(response: Any) -> str:
    return str(response.get_json()["error"]["message"])


def test_upload_show_list_delete(client: FlaskClient) -> None:
    created = post_csv(client, CSV, "churn.csv")
    assert created.status_code == 201
    body = created.get_json()
    assert len(body["id"]) == 64 and body["name"] == "churn.csv"
    assert body["row_count"] == 4 and body["size"] == len(CSV)
    assert body["columns"] == [
        {"name": "a", "type": "number", "missing": 0, "distinct": 4},
        {"name": "b", "type": "integer", "missing": 0, "distinct": 4},
        {"name": "label", "type": "string", "missing": 0, "distinct": 2},
    ]
    again = post_csv(client, CSV, "copy.csv", name="other name")
    assert again.status_code == 200 and again.get_json() == body  # same bytes, same dataset

    assert client.get(f"/api/v1/datasets/{body['id']}").get_json() == body
    assert client.get("/api/v1/datasets").get_json() == {"datasets": [body]}
    deleted = client.delete(f"/api/v1/datasets/{body['id']}", headers=AUTH)
    assert deleted.get_json() == {"deleted": True, "freed_bytes": len(CSV)}
    gone = client.get(f"/api/v1/datasets/{body['id']}")
    assert gone.status_code == 404 and error_code(gone) == "not_found"


def test_name_field_names_the_dataset(client: FlaskClient) -> None:
    response = post_csv(client, CSV, "upload.csv", name="  Churn, March ")
    assert response.status_code == 201 and response.get_json()["name"] == "Churn, March"


def test_a_text_field_is_read_one_way_for_the_api_and_the_dashboard(tmp_path: Path) -> None:
    upload = ReceivedUpload(tmp_path / "f", "0" * 64, 1, "f.csv",
                            {"name": b" x ", "blank": b"  ", "bad": b"\xff\xfe"})
    assert (upload.text("name"), upload.text("blank"), upload.text("absent")) == ("x", None, None)
    with pytest.raises(Unprocessable, match="'bad' is not valid UTF-8"):
        upload.text("bad")


def test_malformed_csv_is_422_naming_the_line(client: FlaskClient) -> None:
    response = post_csv(client, b"a,b\n1,2\n3\n")
    assert response.status_code == 422 and error_code(response) == "invalid_csv"
    assert message(response) == "Line 3 has 1 field, but the header names 2 columns."
    assert client.get("/api/v1/datasets").get_json() == {"datasets": []}  # nothing left behind


def test_empty_file_is_422(client: FlaskClient) -> None:
    response = post_csv(client, b"")
    assert response.status_code == 422 and error_code(response) == "invalid_csv"
    assert message(response) == ("The CSV file is empty: it needs a header line naming the "
                                 "columns, then one line per row.")


def test_over_the_cap_is_413(small_cap_app: Flask) -> None:
    client = small_cap_app.test_client()
    data = b"a,b\n" + b"1,2\n" * 2000
    response = post_csv(client, data)
    assert response.status_code == 413 and error_code(response) == "payload_too_large"
    assert message(response) == (
        f"The upload is larger than the limit of {CAP} bytes (setting max_dataset_bytes).")
    assert not list((small_cap_app.extensions["modeldepot"].settings.paths.tmp).iterdir())


def test_writes_need_the_token(client: FlaskClient) -> None:
    response = post_csv(client, CSV, headers={})
    assert response.status_code == 401 and error_code(response) == "unauthorized"
    created = post_csv(client, CSV).get_json()
    response = client.delete(f"/api/v1/datasets/{created['id']}")
    assert response.status_code == 401


def test_not_multipart_is_415(client: FlaskClient) -> None:
    response = client.post("/api/v1/datasets", data=CSV, content_type="text/csv", headers=AUTH)
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"
    assert message(response) == ("Uploads take multipart/form-data with a 'file' part, not "
                                 "text/csv.")


def test_unexpected_form_part_is_422(client: FlaskClient) -> None:
    response = post_csv(client, CSV, metadata="{}")
    assert response.status_code == 422
    assert message(response) == ("Unexpected form part 'metadata': send 'file' and optionally "
                                 "'name', once each.")


def test_unknown_dataset_is_404(client: FlaskClient) -> None:
    for dataset_id in ("f" * 64, "not-a-digest"):
        response = client.get(f"/api/v1/datasets/{dataset_id}")
        assert response.status_code == 404
        assert message(response).startswith(f"No dataset with id '{dataset_id}'.")
        assert client.delete(f"/api/v1/datasets/{dataset_id}", headers=AUTH).status_code == 404
