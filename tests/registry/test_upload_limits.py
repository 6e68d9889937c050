"""API.md: uploads are capped (setting), answered with a JSON 413, and leave nothing behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app.config import Settings
from tests.registry.conftest import AUTH, error_code, registry_app, upload

LIMIT = 1000


@pytest.fixture
def small(settings: Settings) -> FlaskClient:
    with registry_app(settings.replace(max_upload_bytes=LIMIT)) as app:
        yield app.test_client()


def leaves_nothing(client: FlaskClient, settings: Settings) -> None:
    assert client.get("/api/v1/models/m").status_code == 404
    assert [p for p in settings.paths.tmp.iterdir() if p.is_file()] == []


def test_a_file_over_the_limit_is_a_json_413_naming_the_setting(
        small: FlaskClient, settings: Settings, tmp_path: Path) -> None:
    big = tmp_path / "big.skops"
    big.write_bytes(b"x" * (5 * LIMIT))
    r = upload(small, "m", big)
    assert r.status_code == 413 and error_code(r) == "payload_too_large"
    assert "max_upload_bytes" in r.get_json()["error"]["message"]
    leaves_nothing(small, settings)


def test_a_body_declared_too_large_is_refused_before_it_is_read(
        small: FlaskClient, settings: Settings) -> None:
    r = small.post("/api/v1/models/m/versions", input_stream=io.BytesIO(b"--b\r\n"),
                   headers=AUTH, environ_overrides={"CONTENT_LENGTH": str(8 << 20)},
                   content_type="multipart/form-data; boundary=b")
    assert r.status_code == 413 and error_code(r) == "payload_too_large"
    leaves_nothing(small, settings)


@pytest.mark.parametrize(("content", "code"), [(b"", "invalid_model_file"),
                                                (b"not a model at all", "invalid_model_file")])
def test_a_bad_file_is_refused_with_nothing_left(
        client: FlaskClient, settings: Settings, tmp_path: Path, content: bytes,
        code: str) -> None:
    path = tmp_path / "bad.skops"
    path.write_bytes(content)
    r = upload(client, "m", path)
    assert r.status_code == 422 and error_code(r) == code, r.get_json()
    leaves_nothing(client, settings)
