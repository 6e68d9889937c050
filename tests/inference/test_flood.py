"""The inference server under a flood of 2,000 connections, most idle or slow-sending: it keeps
answering other clients and its health probe, its memory stays bounded, a slow client holds no
batch, and the flood is shed after request_timeout_s (app/inference/connections.py)."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from app.config import Paths
from app.store import Store
from tests.inference.conftest import ROW, add_version
from tests.live import free_port, start_inference, stop, wait_until
from tests.models import iris_model

pytestmark = pytest.mark.slow

IDLE, SLOW = 1500, 500
TIMEOUT_S = 4
RSS_GROWTH_LIMIT = 150 << 20  # about 75 KiB a connection: bounded, not a copy per request


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slow_request(port: int) -> bytes:
    """The start of a prediction whose body never arrives whole."""
    body = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    head = (f"POST /v1/models/iris/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body[:10]


def test_a_flood_of_idle_and_slow_connections(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    store = Store(Paths(home))
    try:
        add_version(store, "iris", iris_model(), tmp_path, alias="production")
    finally:
        store.close()
    proc = start_inference(home, port, MODELDEPOT_REQUEST_TIMEOUT_S=str(TIMEOUT_S))
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.post("/v1/models/iris/predict",
                               json={"instances": [ROW]}).status_code == 200  # model loaded
            baseline_rss, baseline_fds = rss(proc.pid), descriptors(proc.pid)
            with ExitStack() as stack:
                flood = [stack.enter_context(socket.create_connection(("127.0.0.1", port)))
                         for _ in range(IDLE + SLOW)]
                for sock in flood[IDLE:]:
                    sock.sendall(slow_request(port))
                wait_until(lambda: descriptors(proc.pid) >= baseline_fds + IDLE + SLOW, 30,
                           "the server accepted the whole flood")
                # Others are served meanwhile, while every slow request is still incomplete.
                assert client.get("/v2/health/live").status_code == 200
                assert client.get("/v2/health/ready").status_code == 200
                for _ in range(20):
                    r = client.post("/v1/models/iris/predict", json={"instances": [ROW]})
                    assert r.status_code == 200 and r.json()["predictions"] == [0]
                assert rss(proc.pid) - baseline_rss < RSS_GROWTH_LIMIT
                # Past the deadline the server closes every flood connection itself.
                for sock in flood:
                    sock.settimeout(TIMEOUT_S + 30)
                    assert sock.recv(1024) == b""
            wait_until(lambda: descriptors(proc.pid) <= baseline_fds + 5, 30,
                       "the flood's descriptors are released")
            assert client.get("/v2/health/live").status_code == 200
        assert proc.poll() is None
    finally:
        stop(proc)
