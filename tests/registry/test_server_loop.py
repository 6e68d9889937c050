"""The registry's server loop: descriptors past 1023, and health probes that skip the queue."""

from __future__ import annotations

import http.client
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from flask import Flask

from app.config import Settings
from tests.conftest import TOKEN
from tests.live import free_port, start_registry, stop, wait_until
from tests.registry.conftest import registry_app
from tests.registry.inthread import serving

CONNECTIONS = 1150


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def get(base: str, path: str, timeout: float = 5.0, **headers: str) -> http.client.HTTPResponse:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return response


def test_over_1100_open_connections_and_the_registry_still_answers(tmp_path: Path) -> None:
    """waitress's select() loop died with 'filedescriptor out of range in select()' once a
    socket's number passed 1023; the poll() loop serves on."""
    port = free_port()
    proc = start_registry(tmp_path / "home", port)
    base = f"http://127.0.0.1:{port}"
    try:
        with ExitStack() as stack:
            for _ in range(CONNECTIONS):
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
            wait_until(lambda: open_descriptors(proc.pid) > CONNECTIONS, 30,
                       f"the registry holds over {CONNECTIONS} descriptors")
            # Each new socket is numbered past 1023 now: health and a write are served on it.
            assert get(base, "/api/v1/health").status == 200
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/api/v1/models", body=b'{"name": "busy"}', headers={
                "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
            assert conn.getresponse().status == 201
            conn.close()
        assert proc.poll() is None
        assert get(base, "/api/v1/models/busy").status == 200
    finally:
        stop(proc)


@pytest.fixture
def blocking_app(settings: Settings) -> Iterator[tuple[Flask, threading.Event]]:
    """The registry app with one extra route that holds its worker until released."""
    release = threading.Event()
    with registry_app(settings.replace(registry_threads=2)) as app:
        app.add_url_rule("/test/hold", "hold", lambda: ("held", 200) if release.wait(30) else
                         ("timed out", 500))
        yield app, release
        release.set()


def test_health_answers_while_every_worker_is_busy(
    blocking_app: tuple[Flask, threading.Event], settings: Settings
) -> None:
    app, release = blocking_app
    with serving(app, settings.replace(registry_threads=2)) as base:
        holders = [threading.Thread(target=get, args=(base, "/test/hold", 30)) for _ in range(4)]
        for t in holders:
            t.start()  # two workers held, two more requests queued behind them
        wait_until(lambda: len(threading.enumerate()) >= 6, 10, "the holders started")
        # An ordinary read waits in the queue: no answer while the workers are held ...
        with pytest.raises(TimeoutError):
            get(base, "/api/v1/models", timeout=0.5)
        # ... but a probe has its own lane, and still goes through the app's security check.
        probe = get(base, "/api/v1/health")
        assert probe.status == 200
        assert probe.getheader("X-Content-Type-Options") == "nosniff"
        assert get(base, "/api/v1/health", Host="evil.example").status == 403
        assert not release.is_set()
        release.set()
        for t in holders:
            t.join(30)
        assert get(base, "/api/v1/models").status == 200
