"""The registry's real waitress server (app/registry/server.py) in a thread of the test process,
for tests that must hold the app in a known state (a worker blocked, an upload slot taken)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from waitress import wasyncore

from app.config import Settings
from app.net import bind_socket
from app.registry.server import create_server


@contextmanager
def serving(app: Flask, settings: Settings) -> Iterator[str]:
    """Serve `app` on a free loopback port; yields its base URL. On exit the event loop closes
    every connection and returns, from its own thread (waitress's objects are not thread-safe)."""
    sock = bind_socket("127.0.0.1", 0, "registry_port")
    server: Any = create_server(app, sock, settings)
    thread = threading.Thread(target=server.run, name="test-waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.task_dispatcher.shutdown(timeout=2)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(10)
