"""A real MLflow tracking server for the MLflow mirror tests: `mlflow server` with a SQLite
backend store and a local artifact root in a temp dir, as a process on a free loopback port,
started once per session (its first start creates its database: tens of seconds on a busy
box), with the test models logged and registered by the MLflow client in their own process
(tests/mlflow/mlflow_side.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.client import exchange
from tests.fleet.test_mirror import edge  # noqa: F401  (the edge registry fixture, shared)
from tests.live import free_port

START_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class MlflowServer:
    port: int
    runs: dict[str, dict[str, str]]  # model -> version -> run id, as registered

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, route: str, body: dict[str, Any]) -> Any:
        answer = exchange("127.0.0.1", self.port, "POST", f"/api/2.0/mlflow/{route}",
                          body=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"}, timeout=60)
        assert answer.status == 200, answer.body
        return answer.body

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self.post("registered-models/alias",
                  {"name": model, "alias": alias, "version": str(version)})

    def set_stage(self, model: str, version: int, stage: str) -> None:
        self.post("model-versions/transition-stage",
                  {"name": model, "version": str(version), "stage": stage,
                   "archive_existing_versions": True})


def mlflow_side(*args: str) -> Any:
    """Run tests/mlflow/mlflow_side.py and return its JSON result."""
    done = subprocess.run([sys.executable, "-m", "tests.mlflow.mlflow_side", *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow server exited: {log.read_text()[-3000:]}")
        try:
            if exchange("127.0.0.1", port, "GET", "/health", timeout=2).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"mlflow server not healthy in {START_TIMEOUT_S} s: "
                         f"{log.read_text()[-3000:]}")


def start_mlflow_server(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`mlflow server` over a SQLite store and an artifact root under `root`, healthy."""
    port = free_port()
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server",
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    try:
        _wait_healthy(proc, port, log)
    except BaseException:
        stop_group(proc)
        raise
    return proc, port


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    proc, port = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    try:
        runs = mlflow_side("register", f"http://127.0.0.1:{port}")
        yield MlflowServer(port, runs)
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """`mlflow server` runs uvicorn and a job runner as its children: end its whole group."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
            if sig == signal.SIGTERM:
                time.sleep(0.5)  # its children end after it; then make sure
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def pyfunc_predictions(mlflow_server: MlflowServer) -> dict[str, list[Any]]:
    """What mlflow.pyfunc.load_model predicts for each registered sklearn version, by
    models:/name/version."""
    uris = [f"models:/{name}/{number}" for name, versions in mlflow_server.runs.items()
            if name not in ("noflavor", "iris-lambda") for number in versions]
    return dict(mlflow_side("predict", mlflow_server.http, *uris))
