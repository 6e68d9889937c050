"""Getting in: the token link that `modeldepot serve --open` opens, the login form, logging out.

As Jupyter does: `/?token=...` checks the token, sets the session cookie and redirects to the same
page without the token, so it stays out of the history, bookmarks and screenshots.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, request, url_for
from werkzeug.wrappers import Response

from app.errors import ModelDepotError, Unauthorized
from app.registry.context import registry
from app.registry.dashboard.web import (
    end_session,
    form_text,
    go,
    logged_in,
    page,
    safe_next,
    start_session,
)

bp = Blueprint("auth", __name__)


def login_page(
    error: str | None = None, *, status: int = 200, next_url: str | None = None
) -> Response:
    if next_url is None:
        next_url = request.full_path.rstrip("?") if request.method == "GET" else "/"
    if next_url.startswith(url_for("dashboard.auth.login")):
        next_url = "/"
    return page("login.html", status, error=error, next_url=safe_next(next_url), nav="login")


def _check_token(presented: str) -> None:
    # The policy's own comparison (constant time), so the form and the link judge alike.
    registry().policy.require_token({"authorization": f"Bearer {presented}"})


def follow_token_link() -> Response:
    args = request.args.to_dict(flat=False)
    presented = (args.pop("token", None) or [""])[0]
    clean = request.path + (f"?{urlencode(args, doseq=True)}" if args else "")
    try:
        _check_token(presented)
    except Unauthorized:
        return login_page(
            "The link's token is not this server's token; it may be from an older start. "
            "Paste the token from `modeldepot token`, or open the link the server printed.",
            status=401, next_url=clean,
        )
    return start_session(go(safe_next(clean)), logged_in=True)


@bp.get("/login")
def login() -> Response:
    return login_page(next_url=request.args.get("next", "/"))


@bp.post("/login")
def login_post() -> Response:
    next_url = safe_next(request.form.get("next"))
    try:
        _check_token(form_text("token", required=True, label="the token", max_length=500))
    except ModelDepotError as exc:
        return login_page(exc.message, status=exc.status, next_url=next_url)
    return start_session(go(next_url, ok="You are logged in."), logged_in=True)


@bp.post("/logout")
def logout() -> Response:
    was_in = logged_in()
    return end_session(go("/", ok="You are logged out." if was_in else None))
