"""API.md's security defaults, checked on the registry."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.registry.app import create_app
from app.security import load_or_create_token
from tests.models import write_skops
from tests.registry.conftest import AUTH, error_code, registry_app, upload


def test_writes_need_the_token(client: FlaskClient) -> None:
    r = client.post("/api/v1/models", json={"name": "m"})
    assert r.status_code == 401 and error_code(r) == "unauthorized"
    r = client.post("/api/v1/models", json={"name": "m"},
                    headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 401
    assert client.get("/api/v1/models").status_code == 200  # reads don't need it


@pytest.mark.parametrize("host", ["evil.example", "attacker.com:8720", "10.0.0.5", "[2001:db8::1]",
                                  "[::1]evil.example", "[::1]:80:x", "[::1"])
def test_foreign_host_is_403_before_routing(client: FlaskClient, host: str) -> None:
    for path in ("/api/v1/models", "/api/v1/health", "/api/v1/no-such-route"):
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 403, (host, path)
        assert error_code(r) == "forbidden"


@pytest.mark.parametrize("host", ["localhost:8720", "127.0.0.1", "[::1]:8720", "127.1.2.3"])
def test_loopback_hosts_are_fine(client: FlaskClient, host: str) -> None:
    assert client.get("/api/v1/health", headers={"Host": host}).status_code == 200


def test_allowed_hosts_setting(settings: Settings) -> None:
    client = create_app(settings.replace(allowed_hosts=("box.local",))).test_client()
    assert client.get("/api/v1/health", headers={"Host": "box.local:8720"}).status_code == 200


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"},
                                     {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "null"}])
def test_cross_site_writes_are_403_even_with_token(client: FlaskClient, headers: dict) -> None:
    r = client.post("/api/v1/models", json={"name": "m"}, headers={**AUTH, **headers})
    assert r.status_code == 403
    assert client.get("/api/v1/models/m").status_code == 404


def test_same_origin_write_is_fine(client: FlaskClient) -> None:
    r = client.post("/api/v1/models", json={"name": "m"},
                    headers={**AUTH, "Origin": "http://127.0.0.1:8720",
                             "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 201


def test_auth_all_protects_reads_but_not_health(settings: Settings) -> None:
    client = create_app(settings.replace(auth="all")).test_client()
    assert client.get("/api/v1/models").status_code == 401
    assert client.get("/api/v1/models", headers=AUTH).status_code == 200
    assert client.get("/api/v1/health").status_code == 200


def test_auth_none_lets_writes_through(settings: Settings) -> None:
    client = create_app(settings.replace(auth="none")).test_client()
    assert client.post("/api/v1/models", json={"name": "m"}).status_code == 201


def test_remote_bind_forces_auth_all(settings: Settings) -> None:
    assert settings.replace(host="0.0.0.0", allow_remote=True).effective_auth == "all"


def test_no_cors_headers(client: FlaskClient) -> None:
    r = client.get("/api/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_token_file_is_private_and_stable(settings: Settings) -> None:
    path = settings.paths.token_file
    token = load_or_create_token(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_token(path) == token and len(token) >= 32


def test_every_write_route_needs_the_token(client: FlaskClient) -> None:
    """Every route that changes something, as the registry's own OpenAPI lists them."""
    spec = client.get("/api/v1/openapi.json").json
    writes = [(method.upper(), path) for path, ops in spec["paths"].items()
              for method, op in ops.items() if method != "get"]
    assert len(writes) >= 12
    for method, path in writes:
        op = spec["paths"][path][method.lower()]
        assert op.get("security"), f"{method} {path} does not say it needs the token"
        concrete = path.replace("{name}", "m").replace("{version}", "1").replace(
            "{alias}", "production").replace("{dataset_id}", "d" * 64).replace("{job_id}", "j")
        for headers in ({}, {"Authorization": "Bearer wrong-token"}):
            r = client.open(concrete, method=method, json={}, headers=headers)
            assert r.status_code == 401 and error_code(r) == "unauthorized", (method, path)


def test_an_unexpected_failure_is_a_json_500_with_nothing_internal(
        app: Flask, client: FlaskClient, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"disk trouble under {settings.home}")

    monkeypatch.setattr(app.extensions["modeldepot"].store, "list_models", broken)
    r = client.get("/api/v1/models")
    assert r.status_code == 500 and error_code(r) == "internal_error"
    assert str(settings.home) not in r.text and "Traceback" not in r.text
    assert "RuntimeError" not in r.text


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_cross_site_writes_of_every_method_are_403(client: FlaskClient, method: str) -> None:
    assert client.post("/api/v1/models", json={"name": "m"}, headers=AUTH).status_code == 201
    path = {"PUT": "/api/v1/models/m/aliases/production", "PATCH": "/api/v1/models/m",
            "DELETE": "/api/v1/models/m"}[method]
    r = client.open(path, method=method, json={"version": 1, "description": "x"},
                    headers={**AUTH, "Origin": "https://evil.example"})
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert client.get("/api/v1/models/m").status_code == 200


def test_a_remote_bind_makes_every_route_but_health_need_the_token(settings: Settings) -> None:
    remote = settings.replace(host="0.0.0.0", allow_remote=True)
    with registry_app(remote) as app:
        client = app.test_client()
        assert client.get("/api/v1/health").status_code == 200
        r = client.get("/api/v1/models")
        assert r.status_code == 401 and error_code(r) == "unauthorized"
        assert client.get("/api/v1/models", headers=AUTH).status_code == 200


def test_a_client_filename_never_becomes_a_path(client: FlaskClient, settings: Settings,
                                                tmp_path: Path) -> None:
    model = write_skops(tmp_path / "iris.skops")
    r = upload(client, "trav", model, filename="../../../../tmp/pwn.skops")
    assert r.status_code == 201, r.get_json()
    stored = [p for p in settings.paths.blobs.rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [r.get_json()["sha256"]]
    assert not (settings.home.parent / "pwn.skops").exists() and not Path("/tmp/pwn.skops").exists()
    with client.get("/api/v1/models/trav/versions/1/artifact") as artifact:
        disposition = artifact.headers["Content-Disposition"]
    assert ".." not in disposition and "/" not in disposition.split("filename=")[-1]
