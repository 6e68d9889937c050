"""Raw ASGI plumbing shared by the security gate and the prediction fast path.

The security gate runs `SecurityPolicy.check` before any routing, as the registry's
`before_request` does: Host first (DNS rebinding), Origin / Sec-Fetch-Site on writes (CSRF), then
the token. It is a plain ASGI middleware, not Starlette's BaseHTTPMiddleware, which would cost a
task and a stream per request on the prediction path.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from app.errors import ModelDepotError
from app.security import SecurityPolicy

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADERS_KEY = "modeldepot.headers"
ROUTE_KEY = "modeldepot.route"
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
_MODEL_READY = re.compile(r"/v2/models/[^/]+(/versions/[^/]+)?/ready")
ROUTES = {("v1", "predict"), ("v2", "infer")}
_JSON = b"application/json"
_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff")]


def headers_of(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names (ASGI requires servers to lower-case them)."""
    found: dict[str, str] | None = scope.get(HEADERS_KEY)
    if found is None:
        found = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        scope[HEADERS_KEY] = found
    return found


def route_of(scope: Scope) -> tuple[str, str, str | None] | None:
    """match(scope["path"]), worked out once per request (the gate and the fast path ask)."""
    if ROUTE_KEY in scope:
        found: tuple[str, str, str | None] | None = scope[ROUTE_KEY]
        return found
    found = scope[ROUTE_KEY] = match(scope["path"])
    return found


def match(path: str) -> tuple[str, str, str | None] | None:
    """(protocol, model name, version ref or None) for a prediction path, else None."""
    parts = path.split("/")
    n = len(parts)
    if n == 5 and parts[2] == "models" and (parts[1], parts[4]) in ROUTES and parts[3]:
        return parts[1], parts[3], None
    if n == 7 and parts[2] == "models" and parts[4] == "versions" and \
            (parts[1], parts[6]) in ROUTES and parts[3] and parts[5]:
        return parts[1], parts[3], parts[5]
    return None


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or _MODEL_READY.fullmatch(path) is not None


def error_body(path: str, exc: ModelDepotError) -> bytes:
    """/v2 errors as its spec says (`{"error": "..."}`), all others as the house shape."""
    if path.startswith("/v2"):
        return orjson.dumps({"error": exc.message})
    return orjson.dumps(exc.to_dict())


def error_status(path: str, exc: ModelDepotError) -> int:
    # The v2 spec answers bad input with 400 where /v1 (and the registry) say 422.
    if exc.status == 422 and path.startswith("/v2"):
        return 400
    return exc.status


async def send_body(send: Send, status: int, body: bytes, content_type: bytes = _JSON,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers += _SECURITY_HEADERS
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, path: str, exc: ModelDepotError) -> None:
    extra = None if exc.retry_after is None else \
        [(b"retry-after", str(exc.retry_after).encode())]
    await send_body(send, error_status(path, exc), error_body(path, exc), extra=extra)


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        try:
            # A prediction changes nothing: under auth=writes it needs no token, as docs/api.md
            # says; it is still a POST, so the Host and Origin checks stay.
            route = route_of(scope)
            self.policy.check(scope["method"], headers_of(scope),
                              public=route is None and is_public(path),
                              read_only=route is not None)
        except ModelDepotError as exc:
            extra = [(b"www-authenticate", b"Bearer")] if exc.status == 401 else None
            await send_body(send, exc.status, error_body(path, exc), extra=extra)
            return
        await self.app(scope, receive, send)
