"""Request security shared by both servers, as plain functions over plain data.

The order of checks matters: Host first (a DNS-rebinding page must learn nothing, not even a 404),
then Origin / Sec-Fetch-Site for state-changing requests (a cross-site form post needs no CORS
preflight, so the browser will send it), then the token. Both servers wrap `SecurityPolicy.check`
in their own middleware; nothing here knows Flask or FastAPI.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from app.errors import BadRequest, Forbidden, Unauthorized
from app.net import host_of, is_loopback

if TYPE_CHECKING:
    from app.config import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_BYTES = 32


# A dict of lower-case names, or werkzeug's case-insensitive Headers (which no typing protocol
# matches both of; this module must not import werkzeug). Only `.get(name)` is used.
Headers = Any


def load_or_create_token(path: Path) -> str:
    """Read the token file, creating it (mode 0600, atomically, exactly once) if missing."""
    try:
        return _read_token(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
    return _read_token(path)


def api_token(settings: Settings) -> str:
    """The token the servers check: the setting if given, else the data dir's token file
    (created on first use)."""
    return settings.token or load_or_create_token(settings.paths.token_file)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        token = ""
    if len(token) < 16:
        raise BadRequest(
            f"The token file {path} is empty or too short; delete it to make a new one."
        )
    return token


@dataclass(frozen=True)
class SecurityPolicy:
    token: str
    auth: str = "writes"  # writes | all | none
    allowed_hosts: frozenset[str] | tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Compared with every request's Host (lower-cased by host_of): normalised once here.
        object.__setattr__(self, "allowed_hosts", frozenset(h.lower() for h in self.allowed_hosts))

    def host_allowed(self, host: str) -> bool:
        return is_loopback(host) or host in self.allowed_hosts

    def check(
        self,
        method: str,
        headers: Headers,
        *,
        public: bool = False,
        read_only: bool = False,
        cookie_token: str | None = None,
    ) -> None:
        """Raise Forbidden or Unauthorized, or return if the request may proceed.

        `headers` must be case-insensitive (both frameworks' header objects are). `public` marks
        health routes, which never need the token but still get the Host check. `read_only`
        marks a POST that changes nothing (a prediction): the token only under auth=all.
        """
        host = headers.get("host")
        if not host or not self.host_allowed(host_of(host)):
            raise Forbidden(
                "This server only answers requests addressed to it by a loopback name or an "
                "allowed host (setting allowed_hosts)."
            )
        writes = method.upper() not in SAFE_METHODS
        if writes:
            self._check_origin(headers)
        if public or self.auth == "none" or (self.auth == "writes" and (not writes or read_only)):
            return
        self.require_token(headers, cookie_token)

    def _check_origin(self, headers: Headers) -> None:
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            raise Forbidden("Cross-site requests may not change anything here.")
        origin = headers.get("origin")
        if origin and origin != "null":
            origin_host = host_of(urlsplit(origin).netloc)
            if not self.host_allowed(origin_host):
                raise Forbidden(
                    f"Requests from origin {origin[:80]!r} may not change anything here."
                )
        elif origin == "null":
            raise Forbidden("Requests from an opaque origin may not change anything here.")

    def require_token(self, headers: Headers, cookie_token: str | None = None) -> None:
        """Raise Unauthorized unless the request carries this server's token."""
        presented = bearer_token(headers.get("authorization", "")) or cookie_token
        if not presented:
            raise Unauthorized(
                "This request needs the API token: send 'Authorization: Bearer <token>' "
                "(`modeldepot token` prints it)."
            )
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise Unauthorized("The API token is wrong. `modeldepot token` prints the right one.")

    def token_presented(self, headers: Headers, cookie_token: str | None = None) -> bool:
        try:
            self.require_token(headers, cookie_token)
        except Unauthorized:
            return False
        return True


def bearer_token(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
