"""`modeldepot inference`: bind the port first, then serve the FastAPI app on uvicorn.

uvloop and httptools roughly double uvicorn's request rate; they are used where the platform has
wheels for them (not Windows for uvloop), and the pure-Python fallbacks otherwise.
"""

from __future__ import annotations

import importlib.util
import logging

from app.config import Settings
from app.registry.server import bind_socket

log = logging.getLogger(__name__)


def event_loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def http_protocol_name() -> str:
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def serve_inference(settings: Settings) -> None:
    import uvicorn

    from app.inference.app import create_app

    sock = bind_socket(settings.host, settings.inference_port, "inference_port")
    app = create_app(settings)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        loop=event_loop_name(),
        http=http_protocol_name(),
        ws="none",  # no WebSocket routes: do not import a WebSocket library at start
        lifespan="on",
        access_log=False,
        log_config=None,  # our logging setup (app/logs.py) stays in charge
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,
        # uvicorn's own limit comes after ours, so the app answers 413 with a JSON body.
        h11_max_incomplete_event_size=settings.max_request_bytes + (1 << 20),
    )
    server = uvicorn.Server(config)
    log.info("inference listening on http://%s:%d (data dir %s, %s/%s)", host, port,
             settings.home, config.loop, config.http)
    server.run(sockets=[sock])
