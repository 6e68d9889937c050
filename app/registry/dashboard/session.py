"""The dashboard's cookies and CSRF tokens, all derived from the API token with HMAC.

The browser never holds the API token itself. Logging in (the token link `serve --open` opens, or
the login form) sets a session cookie `<nonce>.<HMAC(token, "user", nonce)>`; a visitor who has
not logged in gets an anonymous one (`HMAC(token, "anon", nonce)`), so every form can carry a CSRF
token `HMAC(token, "csrf", nonce)`. Nothing is kept on the server: a new API token ends every
session at once, and a leaked cookie is not a bearer token for the API.

Cookies ignore ports, so the cookie names carry the registry's port (two instances on one
machine must not log each other out), and a page on another local port is sent our cookies too:
that is why cookies alone never authorize a write, and every dashboard form post needs the CSRF
token that only our own pages contain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

NONCE_BYTES = 18
MAX_FLASH = 2000


def _sign(token: str, purpose: str, value: str) -> str:
    digest = hmac.new(token.encode(), f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Session:
    nonce: str
    logged_in: bool

    def cookie_value(self, token: str) -> str:
        kind = "user" if self.logged_in else "anon"
        return f"{kind}.{self.nonce}.{_sign(token, kind, self.nonce)}"

    def csrf_token(self, token: str) -> str:
        return _sign(token, "csrf", self.nonce)

    def csrf_valid(self, token: str, presented: str | None) -> bool:
        return bool(presented) and _same(self.csrf_token(token), presented or "")


def new_session(logged_in: bool) -> Session:
    return Session(secrets.token_urlsafe(NONCE_BYTES), logged_in)


def read_session(token: str, value: str | None) -> Session | None:
    """The session a cookie value proves, or None if it is missing or was not signed by us."""
    if not value or len(value) > 200:
        return None
    kind, _, rest = value.partition(".")
    nonce, _, signature = rest.partition(".")
    if kind not in ("user", "anon") or not nonce or not _same(_sign(token, kind, nonce), signature):
        return None
    return Session(nonce, kind == "user")


def flash_value(token: str, level: str, text: str) -> str:
    """A one-shot message for the next page (after a redirect), signed so no one else can set it."""
    payload = base64.urlsafe_b64encode(f"{level}\0{text[:MAX_FLASH]}".encode()).decode()
    return f"{payload}.{_sign(token, 'flash', payload)}"


def read_flash(token: str, value: str | None) -> tuple[str, str] | None:
    if not value or len(value) > 4 * MAX_FLASH:
        return None
    payload, _, signature = value.partition(".")
    if not _same(_sign(token, "flash", payload), signature):
        return None
    try:
        level, _, text = base64.urlsafe_b64decode(payload).decode().partition("\0")
    except (ValueError, UnicodeDecodeError):
        return None
    return (level, text) if level in ("ok", "error") else None
