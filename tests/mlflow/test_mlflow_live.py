"""An edge box (registry and inference server, each its own process) follows an MLflow alias,
added with the command a person types: it serves what mlflow.pyfunc.load_model predicts, swaps
with no failed request when the alias moves, and keeps serving when the MLflow server is gone
(a proxy in front of it is closed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.client import ClientError
from tests.fleet.proxy import CuttingProxy, proxy_to
from tests.fleet.test_mirror_live import Box, mirror_state
from tests.live import flooding, free_ports, wait_until
from tests.mlflow.conftest import MlflowServer
from tests.models import iris_rows

pytestmark = pytest.mark.slow
EVERY_S = 1.0


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Box]:
    ports = free_ports(2)
    box = Box(tmp_path / "edge" / "home", ports[0], ports[1])
    try:
        box.start()
        yield box
    finally:
        box.stop()


def predict(box: Box) -> Any:
    return box.inference.request("POST", "/v1/models/iris/versions/champion/predict",
                                 json_body={"instances": iris_rows(20).tolist()})["predictions"]


def serving(box: Box, mlflow_version: int) -> bool:
    try:
        record = box.registry.request("GET", "/api/v1/models/iris/versions/champion")
        return bool(record["origin"]["version"] == mlflow_version and predict(box))
    except ClientError:
        return False


def test_edge_follows_mlflow_alias_and_serves_through_outage(
        mlflow_server: MlflowServer, edge: Box,
        pyfunc_predictions: dict[str, list[Any]]) -> None:
    first, second = sorted(int(v) for v in mlflow_server.runs["iris"])[:2]
    mlflow_server.set_alias("iris", "champion", first)
    with contextlib.ExitStack() as upstream:
        url = upstream.enter_context(proxy_to(CuttingProxy(("127.0.0.1", mlflow_server.port))))
        out = edge.cli("mirror", "add", f"mlflow+{url}", "--model", "iris@champion",
                       "--every", f"{EVERY_S:g}s")
        assert "following iris@champion" in out
        wait_until(lambda: serving(edge, first), 60, "the edge serves the MLflow alias")
        assert predict(edge) == pyfunc_predictions[f"models:/iris/{first}"]

        # predictions on the edge all through the swap: none may fail
        with flooding(lambda: predict(edge)) as failures:
            mlflow_server.set_alias("iris", "champion", second)
            wait_until(lambda: serving(edge, second), 60, "the edge follows the alias move")
        assert failures == []
        assert predict(edge) == pyfunc_predictions[f"models:/iris/{second}"]
    # The MLflow server is gone (its proxy closed): the edge keeps serving and says why
    wait_until(lambda: mirror_state(edge)["state"] == "error", EVERY_S + 10,
               "the edge records the error")
    assert "could not be reached" in mirror_state(edge)["last_error"]
    assert serving(edge, second)
    listed = edge.cli("mirror", "list")
    assert "mlflow+http://" in listed and "could not be reached" in listed
