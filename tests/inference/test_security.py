"""The security gate: Host check before routing, token rules per auth mode, cross-site refusal."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.inference.app import create_app
from app.store import Store
from tests.conftest import TOKEN
from tests.inference.conftest import AUTH, ROW, AppClient

PREDICT = ("/v1/models/iris/predict", {"instances": [ROW]})
INFER = ("/v2/models/iris/infer", {"inputs": [
    {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/models/iris", "/metrics", "/docs"])
def test_foreign_host_is_403_before_routing(client: AppClient, path: str) -> None:
    r = client.get(path, headers={"host": "evil.example:8721"})
    assert r.status_code == 403
    assert "error" in r.json()


@pytest.mark.parametrize("host", ["[::1]evil.example", "[::1]:80:x", "[::1"])
def test_a_bracketed_loopback_with_more_after_it_is_foreign(client: AppClient, host: str) -> None:
    r = client.post(PREDICT[0], json=PREDICT[1], headers={"host": host})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.post(PREDICT[0], json=PREDICT[1], headers={"host": "[::1]:8721"}).status_code \
        == 200


def test_foreign_host_on_predictions_in_each_error_shape(client: AppClient) -> None:
    r = client.post(PREDICT[0], json=PREDICT[1], headers={"host": "evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = client.post(INFER[0], json=INFER[1], headers={"host": "evil.example"})
    assert r.status_code == 403 and isinstance(r.json()["error"], str)


def test_allowed_hosts_setting(settings: Settings, iris_store: Store) -> None:
    app = create_app(settings.replace(allowed_hosts=("depot.lan",)), iris_store)
    with AppClient(app) as c:
        r = c.post(PREDICT[0], json=PREDICT[1], headers={"host": "depot.lan:8721"})
        assert r.status_code == 200


def test_predictions_need_no_token_under_auth_writes(client: AppClient) -> None:
    assert client.post(*PREDICT[:1], json=PREDICT[1]).status_code == 200
    assert client.post(*INFER[:1], json=INFER[1]).status_code == 200


def test_cross_site_prediction_posts_are_refused(client: AppClient) -> None:
    r = client.post(PREDICT[0], json=PREDICT[1], headers={"origin": "https://evil.example"})
    assert r.status_code == 403
    r = client.post(PREDICT[0], json=PREDICT[1], headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    r = client.post(PREDICT[0], json=PREDICT[1], headers={"origin": "null"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = client.post(PREDICT[0], json=PREDICT[1], headers={"origin": "http://localhost:3000"})
    assert r.status_code == 200


def test_no_cors_headers(client: AppClient) -> None:
    preflight = client.request("OPTIONS", PREDICT[0], headers={
        "origin": "https://evil.example", "access-control-request-method": "POST"})
    r = client.post(PREDICT[0], json=PREDICT[1], headers={"origin": "http://localhost:3000"})
    for response in (preflight, r):
        assert "access-control-allow-origin" not in response.headers


def test_a_remote_bind_makes_predictions_need_the_token(settings: Settings,
                                                       iris_store: Store) -> None:
    app = create_app(settings.replace(host="0.0.0.0", allow_remote=True), iris_store)
    with AppClient(app) as c:
        assert c.get("/v2/health/ready").status_code == 200
        r = c.post(PREDICT[0], json=PREDICT[1])
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.post(PREDICT[0], json=PREDICT[1], headers=AUTH).status_code == 200


def test_auth_all_needs_the_token_except_on_health(settings: Settings, iris_store: Store) -> None:
    app = create_app(settings.replace(auth="all"), iris_store)
    with AppClient(app) as c:
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready"):
            assert c.get(path).status_code == 200, path
        for path in ("/v2", "/v2/models/iris", "/metrics", "/v1/models"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert c.get(path, headers=AUTH).status_code == 200, path
        r = c.post(PREDICT[0], json=PREDICT[1])
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.post(INFER[0], json=INFER[1])
        assert r.status_code == 401 and isinstance(r.json()["error"], str)
        wrong = {"Authorization": "Bearer " + "y" * len(TOKEN)}
        assert c.post(PREDICT[0], json=PREDICT[1], headers=wrong).status_code == 401
        assert c.post(PREDICT[0], json=PREDICT[1], headers=AUTH).status_code == 200
        assert c.post(INFER[0], json=INFER[1], headers=AUTH).status_code == 200


def test_responses_carry_nosniff(client: AppClient) -> None:
    r = client.post(PREDICT[0], json=PREDICT[1])
    assert r.headers["x-content-type-options"] == "nosniff"
