"""`modeldepot inference`: bind the port first, then serve the FastAPI app on uvicorn.

uvloop and httptools roughly double uvicorn's request rate; they are used where the platform has
wheels for them (not Windows for uvloop), and the pure-Python fallbacks otherwise. Over httptools
every connection has request_timeout_s to send a whole request (connections.py).
"""

from __future__ import annotations

import importlib.util
import logging
import socket

from app.config import Settings
from app.net import bind_socket

log = logging.getLogger(__name__)


def event_loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"




def serve_inference(settings: Settings) -> None:
    import uvicorn

    from app.inference.app import create_app
    from app.inference.connections import http_protocol

    shared = settings.inference_workers > 1 and hasattr(socket, "SO_REUSEPORT")
    if settings.inference_workers > 1 and not shared:
        log.warning("inference_workers=%d needs SO_REUSEPORT, which this platform lacks; this "
                    "process serves alone", settings.inference_workers)
    sock = bind_socket(settings.host, settings.inference_port, "inference_port", shared=shared)
    app = create_app(settings)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        loop=event_loop_name(),
        http=http_protocol(),
        ws="none",  # no WebSocket routes: do not import a WebSocket library at start
        lifespan="on",
        access_log=False,
        log_config=None,  # our logging setup (app/logs.py) stays in charge
        # No X-Forwarded-* rewriting of the client address or scheme: nothing here uses them,
        # and a local client must not be able to pose as another (docs/security.md).
        proxy_headers=False,
        server_header=False,
        date_header=False,
        # Idle keep-alive connections, and clients slower than this to send a whole request
        # (connections.py), are closed: a flood of them cannot pile up.
        timeout_keep_alive=settings.request_timeout_s,
        # uvicorn's own limit comes after ours, so the app answers 413 with a JSON body.
        h11_max_incomplete_event_size=settings.max_request_bytes + (1 << 20),
        backlog=1024,  # listen() happens here when the socket is shared (net.bind_socket)
    )
    server = uvicorn.Server(config)
    log.info("inference listening on http://%s:%d (data dir %s, %s/%s)", host, port,
             settings.home, config.loop, getattr(config.http, "__name__", config.http))
    server.run(sockets=[sock])
