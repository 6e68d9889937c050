"""`modeldepot registry`: reconcile the data dir, then serve the Flask app on waitress.

Waitress runs with its poll() loop: its default select() loop cannot watch a descriptor numbered
1024 or more and crashed the registry (`filedescriptor out of range in select()`) once uploads
and connections had pushed new sockets past that number. Health probes have a lane of their own
(health_lane.py), and the connection limit follows the open-file limit (app/oslimits.py).
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

from app.config import Settings
from app.formats.confine import confinement
from app.net import bind_socket
from app.store import Store
from app.store.reconcile import reconcile

log = logging.getLogger(__name__)


def _exit_on_sigterm() -> None:
    """SIGTERM ends waitress like Ctrl+C does: `finally` blocks and atexit handlers run."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def request_body_cap(settings: Settings) -> int:
    """Waitress's own cap, above every limit of ours (models and datasets alike), so the app,
    not waitress, answers a too-large upload: 413 with a JSON body naming the setting."""
    return max(settings.max_upload_bytes, settings.max_dataset_bytes) + (64 << 20)


def waitress_options(settings: Settings) -> dict[str, object]:
    """Waitress's adjustments for the registry."""
    from app.oslimits import connection_limit

    return {
        "threads": settings.registry_threads,
        "max_request_body_size": request_body_cap(settings),
        "ident": "modeldepot",
        "clear_untrusted_proxy_headers": True,
        "channel_timeout": 300,
        "asyncore_use_poll": True,
        "connection_limit": connection_limit(),
    }


def create_server(app: object, sock: socket.socket, settings: Settings) -> Any:
    """A waitress server on `sock` whose health probes skip the worker queue."""
    import waitress

    from app.registry.health_lane import LanedDispatcher

    return waitress.create_server(
        app, sockets=[sock], _dispatcher=LanedDispatcher(settings.registry_threads),
        **waitress_options(settings),
    )


def serve_registry(settings: Settings) -> None:
    from app.registry.app import create_app
    from app.registry.legacy import start_converting
    from app.registry.mirrors_api import mirror_loop_of
    from app.training.hooks import queue_missing_load_caches

    sock = bind_socket(settings.host, settings.registry_port, "registry_port")
    filtered, how = confinement()  # what the sandbox checking each upload gets on this machine
    (log.info if filtered else log.warning)("uploaded model files are checked with %s", how)
    store = Store(settings.paths)
    reconcile(store)
    app = create_app(settings, store)
    host, port = sock.getsockname()[:2]
    _exit_on_sigterm()
    runner = app.extensions["modeldepot"].runner
    runner.resume()  # jobs a stopped registry left queued or running
    start_converting(store, settings)  # pickles an earlier release stored (app/registry/legacy.py)
    mirrors = mirror_loop_of(app)
    mirrors.start()  # its own thread: no request thread, no pool slot (app/fleet/mirror_loop.py)
    queue_missing_load_caches(store, runner)  # versions stored before them, or after an upgrade
    log.info("registry listening on http://%s:%d (data dir %s)", host, port, settings.home)
    server = create_server(app, sock, settings)
    try:
        server.run()
    finally:
        mirrors.stop()
        runner.shutdown()  # ends the pool's workers; their jobs run once more on the next start
