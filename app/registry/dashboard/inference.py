"""Calls from the registry to the inference server on the same machine, for the dashboard.

The browser never talks to the inference server itself: that would be a cross-origin request
needing CORS, which neither server grants. The registry forwards the form's request over loopback
with the standard library, carrying the visitor's own credential (the token if they logged in,
nothing otherwise), so the inference server applies its own rules exactly as for any client.
"""

from __future__ import annotations

import http.client

from app.client import Answer, exchange
from app.errors import ServiceUnavailable
from app.net import url_host

MAX_ANSWER = 16 << 20


def call(host: str, port: int, method: str, path: str, body: bytes | None = None, *,
         token: str | None = None, timeout: float = 30.0) -> Answer:
    """One request to the inference server; ServiceUnavailable if it does not answer."""
    headers = {"Accept": "application/json",
               "Host": f"127.0.0.1:{port}"}  # the inference server answers loopback names only
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = exchange(url_host(host), port, method, path, body=body, headers=headers,
                          timeout=timeout, limit=MAX_ANSWER)
    except TimeoutError as exc:
        raise ServiceUnavailable(
            f"The inference server did not answer within {timeout:g} s. It may be busy loading "
            "the model; try again in a moment."
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ServiceUnavailable(
            f"The inference server is not answering on port {port}. Is it running? "
            "`modeldepot status` shows both servers."
        ) from exc
    if isinstance(answer.body, bytes) and len(answer.body) > MAX_ANSWER:
        raise ServiceUnavailable("The inference server's answer is too large to show here.")
    return answer
