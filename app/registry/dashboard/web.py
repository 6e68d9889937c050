"""What every dashboard page shares: the session, CSRF, one-shot messages, rendering, form input."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, g, redirect, render_template, request
from werkzeug.wrappers import Response

from app import __version__
from app.errors import BadRequest
from app.registry.context import registry
from app.registry.dashboard.session import (
    Session,
    flash_value,
    new_session,
    read_flash,
    read_session,
)

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
MAX_FIELD = 10_000


def cookie_names() -> tuple[str, str]:
    # Cookies are shared by every port of a host: the port keeps two instances apart.
    port = registry().settings.registry_port
    return f"modeldepot-session-{port}", f"modeldepot-flash-{port}"


def current_session() -> Session | None:
    if "md_session" not in g:
        g.md_session = read_session(registry().policy.token, request.cookies.get(cookie_names()[0]))
    session: Session | None = g.md_session
    return session


def logged_in() -> bool:
    session = current_session()
    return session is not None and session.logged_in


def session_for_page() -> Session:
    """The visitor's session, creating an anonymous one so the page's forms get a CSRF token."""
    session = current_session()
    if session is None:
        session = g.md_session = new_session(logged_in=False)
        g.md_set_session = True
    return session


def start_session(response: Response, logged_in: bool) -> Response:
    session = g.md_session = new_session(logged_in)
    _set_cookie(response, cookie_names()[0], session.cookie_value(registry().policy.token))
    return response


def end_session(response: Response) -> Response:
    response.delete_cookie(cookie_names()[0], path="/", httponly=True, samesite="Strict")
    return response


def _set_cookie(response: Response, name: str, value: str) -> None:
    # No max_age: a browser session cookie, gone when the browser closes. Not Secure: the servers
    # speak plain HTTP on loopback, and a Secure cookie would never be sent back.
    response.set_cookie(name, value, path="/", httponly=True, samesite="Strict")


def csrf_ok() -> bool:
    session = current_session()
    presented = request.headers.get(CSRF_HEADER) or request.args.get(CSRF_FIELD)
    if presented is None and request.mimetype == "application/x-www-form-urlencoded":
        presented = request.form.get(CSRF_FIELD)
    return session is not None and session.csrf_valid(registry().policy.token, presented)


def page(template: str, http_status: int = 200, **context: Any) -> Response:
    """Render a page with the session's CSRF token and any message left by the last action."""
    reg = registry()
    session = session_for_page()
    flash_cookie = cookie_names()[1]
    message = read_flash(reg.policy.token, request.cookies.get(flash_cookie))
    html = render_template(
        template,
        csrf=session.csrf_token(reg.policy.token),
        logged_in=session.logged_in,
        auth_mode=reg.policy.auth,
        app_version=__version__,
        dashboard_endpoints=current_app.view_functions,
        max_upload=reg.settings.max_upload_bytes,
        message=context.pop("message", None) or message,
        **context,
    )
    response = Response(html, status=http_status, mimetype="text/html")
    if g.get("md_set_session"):
        _set_cookie(response, cookie_names()[0], session.cookie_value(reg.policy.token))
    if flash_cookie in request.cookies:
        response.delete_cookie(flash_cookie, path="/", httponly=True, samesite="Strict")
    return response


def go(url: str, *, ok: str | None = None, error: str | None = None) -> Response:
    """Redirect after a form post (so a reload does not repeat it), with a message for the next
    page."""
    response = redirect(url, 303)
    level, text = ("error", error) if error is not None else ("ok", ok)
    if text:
        _set_cookie(response, cookie_names()[1], flash_value(registry().policy.token, level, text))
    return response


def safe_next(target: str | None, default: str = "/") -> str:
    """A same-site path to return to after logging in; anything else (`//evil`, `http:`) is `/`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def form_text(name: str, *, required: bool = False, label: str | None = None,
              max_length: int = MAX_FIELD) -> str:
    value = request.form.get(name, "").strip()
    if required and not value:
        raise BadRequest(f"Please fill in {label or name}.", code="missing_field")
    if len(value) > max_length:
        raise BadRequest(f"{(label or name).capitalize()} is limited to {max_length} characters.")
    return value


def form_version(name: str = "version") -> int:
    raw = request.form.get(name, "").strip()
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**62:
        raise BadRequest("Choose a version number (1, 2, ...).", code="invalid_version")
    return int(raw)
