"""An edge registry mirrors a real MLflow Model Registry (tests/mlflow/conftest.py), through a
proxy that records every request, one loop round at a time (`run_due`, as tests/fleet/
test_mirror.py does): serializations, trust, stages, no sklearn flavor, caps, credentials, and
nothing downloaded again when the version did not change."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.fleet.mlflow_upstream import MlflowUpstream
from app.fleet.upstream import UpstreamError
from app.formats.predictor import load_predictor
from app.formats.signature import Signature
from tests.fleet.conftest import AUTH, Box, nothing_written
from tests.fleet.proxy import CuttingProxy, proxy_to
from tests.fleet.test_mirror import count_versions, sync, version
from tests.live import free_port
from tests.mlflow.conftest import MlflowServer
from tests.models import iris_rows

pytestmark = pytest.mark.slow
ARTIFACT_ROUTE = "/api/2.0/mlflow-artifacts/artifacts/"


@pytest.fixture
def proxied(mlflow_server: MlflowServer) -> Iterator[tuple[CuttingProxy, str]]:
    """The MLflow server behind a recording proxy; yields (proxy, mlflow+http:// URL)."""
    proxy = CuttingProxy(("127.0.0.1", mlflow_server.port))
    with proxy_to(proxy) as url:
        yield proxy, "mlflow+" + url


def add(box: Box, upstream: str, *refs: str, code: int = 201, **fields: Any) -> dict[str, Any]:
    r = box.client.post("/api/v1/mirrors", json={"upstream": upstream, "models": list(refs),
                                                 **fields}, headers=AUTH)
    assert r.status_code == code, r.get_json()
    return dict(r.get_json())


def number(server: MlflowServer, model: str, index: int) -> int:
    """The MLflow version number of the model's index-th registered version (from 0)."""
    return sorted(int(v) for v in server.runs[model])[index]


def predictions(box: Box, model: str, ref: str) -> list[Any]:
    """What this box's own load path predicts with the stored version (app/formats)."""
    record = version(box, model, ref)
    # A pickle's skops copy when the sandbox made one (what inference serves), else the file
    served = record["served"] or {"format": record["format"], "sha256": record["sha256"]}
    path = box.settings.paths.blobs / served["sha256"][:2] / served["sha256"]
    signature = Signature.from_dict(record["signature"]) if record["signature"] else None
    predictor = load_predictor(path, served["format"], signature=signature)
    with warnings.catch_warnings():  # rows in signature order, as inference passes them
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return np.asarray(predictor.predict(iris_rows(20))).tolist()


def artifact_requests(proxy: CuttingProxy) -> list[str]:
    return [r for r in proxy.requests if ARTIFACT_ROUTE in r.split("\r\n")[0]]


def test_skops_alias_followed_rollback_and_nothing_fetched_twice(
        mlflow_server: MlflowServer, proxied: tuple[CuttingProxy, str], edge: Box,
        pyfunc_predictions: dict[str, list[Any]]) -> None:
    proxy, url = proxied
    first, second = number(mlflow_server, "iris", 0), number(mlflow_server, "iris", 1)
    mlflow_server.set_alias("iris", "champion", first)
    mirror = add(edge, url, "iris@champion", every_s=60)
    state = sync(edge, mirror["id"])
    assert state["state"] == "ok", state["last_error"]
    v1 = version(edge, "iris", "champion")
    assert v1["format"] == "mlflow" and v1["imported_globals"] == []  # skops: no trust needed
    run_id = mlflow_server.runs["iris"][str(first)]
    assert v1["origin"]["kind"] == "mlflow" and v1["origin"]["run_id"] == run_id
    assert v1["origin"]["uri"] == f"mlflow:{url.split('//')[1]}/iris/{first}"
    assert v1["metrics"]["accuracy"] > 0.9 and v1["params"] == {
        "estimator": "LogisticRegression"}
    assert v1["signature"]["feature_names"][0] == "sepal length (cm)"  # from MLmodel
    assert predictions(edge, "iris", "champion") == pyfunc_predictions[f"models:/iris/{first}"]
    assert state["bytes_pulled"] > 0 and artifact_requests(proxy)

    # Unchanged: one request to the alias route, no download
    seen = len(proxy.requests)
    again = sync(edge, mirror["id"])
    assert again["state"] == "ok" and again["bytes_pulled"] == state["bytes_pulled"]
    assert len(proxy.requests) == seen + 1 and "registered-models/alias" in proxy.requests[-1]

    # The alias moves to the forest (skops with trusted tree types): followed
    mlflow_server.set_alias("iris", "champion", second)
    moved = sync(edge, mirror["id"])
    assert moved["state"] == "ok", moved["last_error"]
    v2 = version(edge, "iris", "champion")
    assert v2["version"] == 2 and v2["origin"]["version"] == second
    assert predictions(edge, "iris", "champion") == pyfunc_predictions[f"models:/iris/{second}"]

    # Rolled back upstream: followed with no download (the version's file is here)
    pulled, downloads = moved["bytes_pulled"], len(artifact_requests(proxy))
    mlflow_server.set_alias("iris", "champion", first)
    back = sync(edge, mirror["id"])
    assert back["state"] == "ok" and version(edge, "iris", "champion")["version"] == 1
    assert back["bytes_pulled"] == pulled and len(artifact_requests(proxy)) == downloads
    assert count_versions(edge, "iris") == 2


@pytest.mark.parametrize("model", ["iris-cloudpickle", "iris-pickle"])
def test_pickled_flavors_need_trust(mlflow_server: MlflowServer,
                                    proxied: tuple[CuttingProxy, str], edge: Box, model: str,
                                    pyfunc_predictions: dict[str, list[Any]]) -> None:
    _, url = proxied
    only = number(mlflow_server, model, 0)
    refused = add(edge, url, f"{model}@{only}")
    state = sync(edge, refused["id"])
    assert state["state"] == "error" and "--trust" in state["last_error"]
    nothing_written(edge)

    trusted = add(edge, url, f"{model}@{only}", trust=True)
    state = sync(edge, trusted["id"])
    assert state["state"] == "ok", state["last_error"]
    record = version(edge, model, "1")
    assert record["format"] == "mlflow" and record["imported_globals"]
    assert predictions(edge, model, "1") == pyfunc_predictions[f"models:/{model}/{only}"]


def test_cloudpickle_code_is_refused_even_with_trust(
        mlflow_server: MlflowServer, proxied: tuple[CuttingProxy, str], edge: Box) -> None:
    _, url = proxied
    mirror = add(edge, url, f"iris-lambda@{number(mlflow_server, 'iris-lambda', 0)}",
                 trust=True)
    state = sync(edge, mirror["id"])
    assert state["state"] == "error", "a pickled lambda was accepted"
    assert "iris-lambda" in state["last_error"] and "cloudpickle" in state["last_error"]
    assert "even for trusted uploads" in state["last_error"]
    nothing_written(edge)


def test_stage_is_followed_as_a_lower_case_alias(
        mlflow_server: MlflowServer, proxied: tuple[CuttingProxy, str], edge: Box) -> None:
    _, url = proxied
    second = number(mlflow_server, "iris", 1)
    mlflow_server.set_stage("iris", second, "Production")
    mirror = add(edge, url, "iris@stage:Production")
    state = sync(edge, mirror["id"])
    assert state["state"] == "ok", state["last_error"]
    record = version(edge, "iris", "production")
    assert record["origin"]["version"] == second
    assert state["applied"][0]["alias"] == "production"
    # The dashboard shows the mirror as MLflow's, and the version's MLflow origin with its run
    page = edge.client.get("/mirrors").get_data(as_text=True)
    assert f"MLflow {url}" in page and "iris@stage:Production" in page
    page = edge.client.get("/models/iris").get_data(as_text=True)
    assert record["origin"]["uri"] in page and record["origin"]["run_id"] in page


def test_no_sklearn_flavor_is_a_clear_error_and_nothing_applied(
        mlflow_server: MlflowServer, proxied: tuple[CuttingProxy, str], edge: Box) -> None:
    _, url = proxied
    mirror = add(edge, url, f"noflavor@{number(mlflow_server, 'noflavor', 0)}", trust=True)
    state = sync(edge, mirror["id"])
    assert state["state"] == "error" and "no scikit-learn flavor" in state["last_error"]
    assert state["applied"] == []
    nothing_written(edge)


def test_missing_alias_and_unreachable_server_are_errors(
        mlflow_server: MlflowServer, proxied: tuple[CuttingProxy, str], edge: Box,
        tmp_path: Path) -> None:
    _, url = proxied
    state = sync(edge, add(edge, url, "iris@nosuchalias")["id"])
    assert state["state"] == "error" and "nosuchalias" in state["last_error"]
    dead = add(edge, f"mlflow+http://127.0.0.1:{free_port()}", "iris@champion")
    state = sync(edge, dead["id"])
    assert state["state"] == "error" and "could not be reached" in state["last_error"]
    nothing_written(edge)


def test_caps_refuse_big_folders(mlflow_server: MlflowServer, edge: Box) -> None:
    url = f"mlflow+{mlflow_server.http}"
    store = edge.app.extensions["modeldepot"].store
    first = number(mlflow_server, "iris", 0)
    for upstream, words in ((MlflowUpstream(url, None, store, 1 << 30, max_files=2),
                             "more than 2 files"),
                            (MlflowUpstream(url, None, store, 1000), "over this box's limit")):
        with pytest.raises(UpstreamError, match=words) as caught:
            upstream.resolve([f"iris@{first}"], None)
        assert caught.value.code == "payload_too_large"
        upstream.close()
    assert list(edge.settings.paths.tmp.iterdir()) == []


def test_credentials_are_sent_and_never_shown(
        mlflow_server: MlflowServer, proxied: tuple[CuttingProxy, str], edge: Box) -> None:
    proxy, url = proxied
    first = number(mlflow_server, "iris", 0)
    bearer = add(edge, url, f"iris@{first}", token="s3cret-token")
    basic = add(edge, url, f"iris@{first}", basic_auth="alice:pa55word")
    for mirror in (bearer, basic):
        assert mirror["token"] is True and "s3cret" not in str(mirror)
        assert "pa55word" not in str(mirror)
        assert sync(edge, mirror["id"])["state"] == "ok"
    heads = "\n".join(proxy.requests)
    assert "Authorization: Bearer s3cret-token" in heads
    assert "Authorization: Basic YWxpY2U6cGE1NXdvcmQ=" in heads
    listed = edge.client.get("/api/v1/mirrors").get_data(as_text=True)
    assert "s3cret" not in listed and "pa55word" not in listed and "YWxp" not in listed
