"""Several inference processes on one port (inference_workers, SO_REUSEPORT): a worker that starts
later takes no connection until it has loaded, and a hot swap fails no request."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.store import Store
from tests.inference.conftest import ROW, add_version, wait_for
from tests.live import free_port, launch, start_inference, stop
from tests.models import iris_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="SO_REUSEPORT load sharing is Linux behaviour")
WORKERS = {"MODELDEPOT_INFERENCE_WORKERS": "2"}


def listeners(port: int) -> int:
    """Listening TCP sockets on `port` (from /proc/net/tcp: state 0A is LISTEN)."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, state = line.split()[1], line.split()[3]
            count += state == "0A" and int(local.split(":")[1], 16) == port
    return count


async def hammer(url: str, stop_event: threading.Event, seen: list[Any]) -> None:
    """Predict until told to stop, a new connection per request, so the kernel spreads them
    over every listening worker."""
    limits = httpx.Limits(max_keepalive_connections=0)

    async def one(client: httpx.AsyncClient) -> None:
        while not stop_event.is_set():
            try:
                r = await client.post("/v1/models/iris/predict", json={"instances": [ROW]})
                seen.append((r.status_code, r.json().get("version")))
            except Exception as exc:  # a refused or dropped connection is a failure too
                seen.append((type(exc).__name__, None))

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(8)))


def test_a_late_worker_and_a_swap_fail_no_request(settings: Settings, iris_store: Store,
                                                  tmp_path: Path) -> None:
    port = free_port()
    home = settings.home
    first = start_inference(home, port, **WORKERS)
    second = None
    seen: list[Any] = []
    stop_event = threading.Event()
    traffic = threading.Thread(target=lambda: asyncio.run(
        hammer(f"http://127.0.0.1:{port}", stop_event, seen)))
    try:
        wait_for(lambda: listeners(port) == 1, 30)
        traffic.start()
        wait_for(lambda: len(seen) > 30, 30)
        # The second worker binds the same port while the first serves, loads, then listens.
        second = launch("inference", home, port, **WORKERS)
        wait_for(lambda: listeners(port) == 2, 60)
        wait_for(lambda: len(seen) > 200, 60)
        add_version(iris_store, "iris", iris_model(C=0.01), tmp_path)
        iris_store.set_alias("iris", "production", 2)
        wait_for(lambda: len(seen) > 300 and {v for _, v in seen[-60:]} == {2}, 60)
    finally:
        stop_event.set()
        if traffic.is_alive():
            traffic.join(60)
    try:
        failures = [s for s in seen if s[0] != 200]
        assert not failures, failures[:5]
        assert {v for _, v in seen} == {1, 2}
        stop(first)  # the second worker alone now answers, with the version swapped in
        wait_for(lambda: listeners(port) == 1, 30)
        answers = [httpx.post(f"http://127.0.0.1:{port}/v1/models/iris/predict",
                              json={"instances": [ROW]}, timeout=30) for _ in range(5)]
        assert [(r.status_code, r.json()["version"]) for r in answers] == [(200, 2)] * 5
    finally:
        stop(first)
        if second is not None:
            stop(second)
