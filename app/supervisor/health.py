"""Health probes over plain HTTP, on the standard library.

A probe never raises: a refused connection, a timeout or a 5xx all mean "not healthy", and the
watch loop decides what that means for the child.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any

from app.client import exchange
from app.net import url_host


@dataclass(frozen=True)
class Probe:
    status: int | None  # None: no HTTP answer at all
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200


def probe(host: str, port: int, path: str, timeout: float = 1.0) -> Probe:
    """GET `path` and return the status code and the JSON body (if any)."""
    try:
        answer = exchange(url_host(host), port, "GET", path,
                          headers={"Accept": "application/json"}, timeout=timeout, limit=64 << 10)
    except (OSError, http.client.HTTPException):
        return Probe(None)
    return Probe(answer.status, answer.body if not isinstance(answer.body, bytes) else None)
