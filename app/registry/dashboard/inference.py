"""Calls from the registry to the inference server on the same machine, for the dashboard.

The browser never talks to the inference server itself: that would be a cross-origin request
needing CORS, which neither server grants. The registry forwards the form's request over loopback
with the standard library, carrying the visitor's own credential (the token if they logged in,
nothing otherwise), so the inference server applies its own rules exactly as for any client.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

from app.errors import ServiceUnavailable
from app.net import url_host

MAX_ANSWER = 16 << 20


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """The server's own error sentence, from either error shape (/v1 nested, /v2 flat)."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            error = error.get("message")
        if isinstance(error, str) and error:
            return error
        return f"The inference server answered HTTP {self.status}."


def call(host: str, port: int, method: str, path: str, body: bytes | None = None, *,
         token: str | None = None, timeout: float = 30.0) -> Answer:
    """One request to the inference server; ServiceUnavailable if it does not answer."""
    headers = {"Accept": "application/json", "Connection": "close",
               "Host": f"127.0.0.1:{port}"}  # the inference server answers loopback names only
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(url_host(host).strip("[]"), port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read(MAX_ANSWER + 1)
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
    finally:
        conn.close()
    if len(raw) > MAX_ANSWER:
        raise ServiceUnavailable("The inference server's answer is too large to show here.")
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Answer(response.status, parsed)
