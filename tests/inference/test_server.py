"""`modeldepot inference` as a real process: binds first, serves before the registry exists."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from app.config import Paths
from app.store import Store
from tests.inference.conftest import ROW, add_version
from tests.live import free_port, launch, server_log, stop, wait_healthy
from tests.models import iris_model

pytestmark = pytest.mark.slow


def test_serves_before_the_database_exists_then_picks_models_up(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    proc = launch("inference", home, port, MODELDEPOT_POLL_INTERVAL_MS="50")
    try:
        wait_healthy(f"http://127.0.0.1:{port}/v2/health/ready", proc)
        url = f"http://127.0.0.1:{port}/v1/models/iris/predict"
        assert httpx.post(url, json={"instances": [ROW]}).status_code == 404
        store = Store(Paths(home))  # the registry's side
        try:
            add_version(store, "iris", iris_model(), tmp_path, alias="production")
        finally:
            store.close()
        deadline = time.monotonic() + 15
        # The first load imports scikit-learn, seconds on a busy machine: wait for it.
        while httpx.post(url, json={"instances": [ROW]}, timeout=60).status_code != 200:
            assert time.monotonic() < deadline, "the new model was never served"
            time.sleep(0.05)
        assert httpx.post(url, json={"instances": [ROW]}).json()["predictions"] == [0]
    finally:
        stop(proc)


def test_a_taken_port_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        home = tmp_path / "home"
        proc = launch("inference", home, port)
        proc.wait(60)
        err = server_log(home, "inference", port).read_bytes()
    assert proc.returncode != 0
    assert b"in use" in err
