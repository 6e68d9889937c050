"""Two real boxes, each a registry and an inference server in their own processes: the edge's
registry runs its mirror loop (added with the command a person types) and follows the central
box's production alias; the edge's inference server serves what arrives."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.client import Client, ClientError
from tests.conftest import TOKEN
from tests.live import (
    flooding,
    free_ports,
    server_env,
    start_inference,
    start_registry,
    stop,
    wait_until,
)
from tests.models import iris_model, iris_rows, write_skops

pytestmark = pytest.mark.slow
EVERY_S = 1.0


@dataclass
class Box:
    home: Path
    registry_port: int
    inference_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def registry(self) -> Client:
        return Client(self.url, TOKEN, retries=0)

    @property
    def inference(self) -> Client:
        return Client(f"http://127.0.0.1:{self.inference_port}", TOKEN, retries=0, timeout=10)

    def start(self) -> None:
        self.procs = [start_registry(self.home, self.registry_port, MODELDEPOT_TWINS="false"),
                      start_inference(self.home, self.inference_port)]

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)
        self.procs = []

    def cli(self, *args: str, code: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "app", *args, "--home", str(self.home),
             "--registry-port", str(self.registry_port)],
            env=server_env(self.home), capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stderr
        return done.stdout


@pytest.fixture
def boxes(tmp_path: Path) -> Iterator[tuple[Box, Box]]:
    ports = free_ports(4)
    central = Box(tmp_path / "central" / "home", ports[0], ports[1])
    edge = Box(tmp_path / "edge" / "home", ports[2], ports[3])
    try:
        central.start()
        edge.start()
        yield central, edge
    finally:
        central.stop()
        edge.stop()


def predict(box: Box) -> Any:
    return box.inference.request("POST", "/v1/models/iris/versions/production/predict",
                                 json_body={"instances": iris_rows(20).tolist(), "proba": True})


def serving(box: Box, sha256: str) -> bool:
    try:
        return bool(box.registry.request("GET", "/api/v1/models/iris/versions/production")
                    ["sha256"] == sha256 and predict(box))
    except ClientError:
        return False


def promote(central: Box, path: Path) -> tuple[str, float]:
    version = central.registry.upload("iris", path, {})
    central.registry.request("PUT", "/api/v1/models/iris/aliases/production",
                             json_body={"version": version["version"]})
    return version["sha256"], time.monotonic()


def mirror_state(edge: Box) -> dict[str, Any]:
    mirrors = edge.registry.request("GET", "/api/v1/mirrors")["mirrors"]
    assert len(mirrors) == 1
    return dict(mirrors[0])


def test_edge_follows_central_serves_through_outage_and_catches_up(
        boxes: tuple[Box, Box], tmp_path: Path) -> None:
    central, edge = boxes
    out = edge.cli("mirror", "add", central.url, "--model", "iris@production",
                   "--every", f"{EVERY_S:g}s")
    assert "following iris@production" in out

    sha, _ = promote(central, write_skops(tmp_path / "v1.skops"))
    wait_until(lambda: serving(edge, sha), EVERY_S + 3, "the edge serves the promoted version")
    assert predict(edge)["predictions"] == predict(central)["predictions"]
    assert "ok" in edge.cli("mirror", "list")

    # predictions on the edge all through the swaps: none may fail
    with flooding(lambda: predict(edge)) as failures:
        sha2, _ = promote(central, write_skops(tmp_path / "v2.skops", iris_model(C=0.2)))
        wait_until(lambda: serving(edge, sha2), EVERY_S + 3, "the edge serves version 2")
        assert predict(edge)["predictions"] == predict(central)["predictions"]

        central.stop()  # the central box goes away: the edge keeps serving what it has
        wait_until(lambda: mirror_state(edge)["state"] == "error", EVERY_S + 5,
                   "the edge records the error")
        assert "could not be reached" in mirror_state(edge)["last_error"]
        assert serving(edge, sha2)
        listed = edge.cli("mirror", "list")
        assert "error" in listed and "could not be reached" in listed
        # No supervisor runs these servers, so status exits 3 (not running); mirrors show still.
        assert "could not be reached" in edge.cli("status", code=3)

        central.start()  # back: a rollback on the central box is followed, without download
        pulled = mirror_state(edge)["bytes_pulled"]
        central.registry.request("PUT", "/api/v1/models/iris/aliases/production",
                                 json_body={"version": 1})
        wait_until(lambda: serving(edge, sha), EVERY_S + 3 + 2, "the edge catches up")
        assert mirror_state(edge)["bytes_pulled"] == pulled
    assert failures == []
    versions = edge.registry.request("GET", "/api/v1/models/iris/versions")["versions"]
    assert {v["origin"]["kind"] for v in versions} == {"mirror"} and len(versions) == 2
