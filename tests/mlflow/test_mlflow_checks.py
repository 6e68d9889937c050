"""MLflow mirror checks that need no MLflow server (the plain suite runs them): refs,
credentials and URLs refused by the API with nothing written, and the names a listing may give."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import BadRequest
from app.fleet.mlflow_upstream import check_segment
from app.fleet.upstream import UpstreamError, check_upstream_url
from tests.fleet.conftest import AUTH, Box, error_of


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../x", "a\\b", "x\x00", "\n"])
def test_listed_names_must_be_plain(name: str) -> None:
    with pytest.raises(UpstreamError, match="plain file names"):
        check_segment(name, "sub")
    assert check_segment("model.skops", "") == "model.skops"
    assert check_segment("model.skops", "sub") == "sub/model.skops"


@pytest.mark.parametrize(("fields", "code"), [
    ({"models": ["iris@stage:Nowhere"]}, "invalid_models"),
    ({"models": ["bad name@champion"]}, "invalid_models"),
    ({"models": ["iris@latest"]}, "invalid_models"),
    ({"models": ["iris@stage:Production", "iris@production"]}, "invalid_models"),
    ({"models": ["iris@champion"], "token": "t", "basic_auth": "a:b"}, "invalid_credentials"),
    ({"models": ["iris@champion"], "basic_auth": "no-colon"}, "invalid_credentials"),
    ({"models": ["iris@champion"], "upstream": "mlflow+http://h:5000/p?q=1"},
     "invalid_upstream"),
])
def test_bad_mlflow_mirrors_are_refused(edge: Box, fields: dict[str, Any], code: str) -> None:
    body = {"upstream": "mlflow+http://127.0.0.1:5000", **fields}
    r = edge.client.post("/api/v1/mirrors", json=body, headers=AUTH)
    status, got, message = error_of(r)
    assert (status, got) == (400, code), message
    assert edge.client.get("/api/v1/mirrors").get_json()["mirrors"] == []


@pytest.mark.parametrize(("given", "kept"), [
    ("mlflow+http://MLflow.lan:5000/", "mlflow+http://mlflow.lan:5000"),
    ("mlflow+https://host/mlflow/", "mlflow+https://host/mlflow"),
    ("http://central:8720/", "http://central:8720"),
])
def test_upstream_urls_are_normalized(given: str, kept: str) -> None:
    assert check_upstream_url(given) == kept


@pytest.mark.parametrize("given", ["http://central:8720/api", "mlflow+http://h/a/../b",
                                   "mlflow+http://user:pw@h:5000", "mlflow+ftp://h"])
def test_bad_upstream_urls_are_refused(given: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_upstream_url(given)
    assert caught.value.code == "invalid_upstream"
