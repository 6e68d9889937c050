"""Which dashboard requests are public, and which act for the token through a login session:
asked by the registry's security check and by pages that call the inference server."""

from __future__ import annotations

from flask import Request

from app.registry.context import registry
from app.security import SAFE_METHODS

NAME = "dashboard"
PUBLIC_ENDPOINTS = frozenset({f"{NAME}.static", f"{NAME}.auth.login", f"{NAME}.auth.login_post",
                              f"{NAME}.predict.run"})


def is_dashboard(req: Request) -> bool:
    return (req.blueprint or "").split(".")[0] == NAME


def is_public(req: Request) -> bool:
    """Dashboard routes the registry lets through without the token (Host and Origin still apply).

    The login form, the static files, a token link (its view checks the token itself), and the
    prediction form: predictions need no token under auth=writes, and under auth=all the inference
    server, which the form's post is handed to, asks for it.
    """
    if not is_dashboard(req):
        return False
    if req.endpoint in PUBLIC_ENDPOINTS:
        return True
    return req.method == "GET" and "token" in req.args


def cookie_token(req: Request) -> str | None:
    """The API token, if the request carries a logged-in session that may act for it.

    A session counts for reads everywhere, but for writes only on dashboard routes, where the CSRF
    token is checked too: a page on another local port is sent our cookie as well (cookies ignore
    ports) and passes the Origin check (any loopback origin does), so an API upload that took the
    cookie could be forged from there.
    """
    from app.registry.dashboard.web import logged_in

    if req.method not in SAFE_METHODS and not is_dashboard(req):
        return None
    return registry().policy.token if logged_in() else None
