"""Models routes: success and error paths as a client sees them."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.registry.conftest import AUTH, error_code


def create(client: FlaskClient, name: str, **fields: object) -> object:
    return client.post("/api/v1/models", json={"name": name, **fields}, headers=AUTH)


def test_health_is_public(client: FlaskClient) -> None:
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


def test_create_show_list_patch_delete(client: FlaskClient) -> None:
    r = create(client, "churn", description="Who leaves", tags={"team": "growth"})
    assert r.status_code == 201
    assert r.get_json()["name"] == "churn"
    assert client.get("/api/v1/models/churn").get_json()["tags"] == {"team": "growth"}
    r = client.patch("/api/v1/models/churn", json={"description": "new", "tags": {"env": "x"}},
                     headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["tags"] == {"team": "growth", "env": "x"}
    names = [m["name"] for m in client.get("/api/v1/models").get_json()["models"]]
    assert names == ["churn"]
    r = client.delete("/api/v1/models/churn", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["deleted"] is True
    assert client.get("/api/v1/models/churn").status_code == 404


def test_duplicate_is_409(client: FlaskClient) -> None:
    assert create(client, "m").status_code == 201
    r = create(client, "m")
    assert r.status_code == 409 and error_code(r) == "already_exists"


def test_search_by_text_and_tag_with_pages(client: FlaskClient) -> None:
    for name, team in [("alpha", "a"), ("beta", "b"), ("alphabet", "b")]:
        create(client, name, tags={"team": team})
    r = client.get("/api/v1/models?q=alpha&tag=team:b")
    assert [m["name"] for m in r.get_json()["models"]] == ["alphabet"]
    page = client.get("/api/v1/models?limit=2").get_json()
    assert len(page["models"]) == 2 and page["next_page_token"]
    rest = client.get(f"/api/v1/models?limit=2&page_token={page['next_page_token']}").get_json()
    assert [m["name"] for m in rest["models"]] == ["beta"] and rest["next_page_token"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=5000", "page_token=%%%",
                                   "tag=nocolon", "tag=../x:1"])
def test_bad_queries_are_400(client: FlaskClient, query: str) -> None:
    r = client.get(f"/api/v1/models?{query}")
    assert r.status_code == 400, r.get_json()
    error_code(r)


@pytest.mark.parametrize("name", ["../etc", "..", "a/b", "ümlaut", "a b", "x" * 200, "-x", "",
                                  "a\u202eb", "con\x00", "%2e%2e"])
def test_hostile_names_are_refused(client: FlaskClient, name: str) -> None:
    r = create(client, name)
    assert r.status_code == 400
    assert error_code(r) == "invalid_name"


@pytest.mark.parametrize("path", ["/api/v1/models/..%2F..%2Fetc", "/api/v1/models/%00",
                                  "/api/v1/models/ümlaut", "/api/v1/models/a%20b"])
def test_hostile_names_in_paths_never_500(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (400, 404)
    error_code(r)


def test_unknown_fields_are_422(client: FlaskClient) -> None:
    r = client.post("/api/v1/models", json={"name": "m", "colour": "red"}, headers=AUTH)
    assert r.status_code == 422 and "colour" in r.get_json()["error"]["message"]


def test_wrong_types_are_422(client: FlaskClient) -> None:
    r = client.post("/api/v1/models", json={"name": 5}, headers=AUTH)
    assert r.status_code == 422
    r = client.post("/api/v1/models", json={"name": "m", "tags": {"k": 1}}, headers=AUTH)
    assert r.status_code == 422


def test_non_json_is_415_and_bad_json_400(client: FlaskClient) -> None:
    r = client.post("/api/v1/models", data="name=m", content_type="text/plain", headers=AUTH)
    assert r.status_code == 415 and error_code(r) == "unsupported_media_type"
    r = client.post("/api/v1/models", data="{", content_type="application/json", headers=AUTH)
    assert r.status_code == 400 and error_code(r) == "invalid_json"
    r = client.post("/api/v1/models", data="[1]", content_type="application/json", headers=AUTH)
    assert r.status_code == 422


def test_oversized_json_is_413(client: FlaskClient) -> None:
    r = client.post("/api/v1/models", json={"name": "m", "description": "x" * (2 << 20)},
                    headers=AUTH)
    assert r.status_code == 413


def test_unknown_route_and_method_are_json(client: FlaskClient) -> None:
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = client.put("/api/v1/models", headers=AUTH)
    assert r.status_code == 405 and error_code(r) == "method_not_allowed"


def test_tag_and_description_limits(client: FlaskClient) -> None:
    r = create(client, "m", tags={"k": "v" * 6000})
    assert r.status_code == 400
    r = create(client, "m", tags={"bad key": "v"})
    assert r.status_code == 400
    assert client.get("/api/v1/models/m").status_code == 404  # nothing half-written
